"""Taking over a CA that exists (issue 14): its key where it is, its certificates, its revocation history.

- the token itself, when the previous system keeps its keys in one of its own: `revoca init
  --adopt-token` (ca.ceremony) replaces its user PIN with the one derived from the M-of-N
  activation secret;
- `adopt`: `revoca ca adopt` checks an existing CA's self-signed, link and cross certificates
  against the key already in the token and records them, the CA marked as being adopted;
- `crl_reader`: a previous system's CRL or ARL read entry by entry, in bounded memory;
- `exports`: the previous system's `index.txt` (openssl ca) or a CSV export, line by line;
- `history`: `revoca crl import-history` puts those revocations in the database exactly as they
  were, makes the CRL/ARL numbers continue above the last imported ones, and then lets the CA
  issue lists.
"""
