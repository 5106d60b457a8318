"""The web repository (seed 004 2.2, 2.3, 4.9.12(1), 5.7.3, 9.3.3): the CA's public face.

Static pages made from the database (ca.storage.public, notices, provision_reports) and the
ARLs as the directory publishes them: each CA with its certificates for download (DER and PEM,
SHA-256 and SHA-1 fingerprints), the CAs it is or was cross-certified with, link certificates,
its ARL, the practice statement, compromise and termination notices, and the monthly provision
status reports.  Japanese first, English beside it; semantic HTML that needs no JavaScript.

`revoca web build --out DIR` writes the pages for any web server; `revoca serve web` serves them
and makes them again whenever PublicReads.change_mark moves (ca.web.watch).
"""
