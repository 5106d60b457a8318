"""CRLs and ARLs (RFC 5280 section 5), streamed from the database at national scale.

One module per job:

- `der`: the few DER primitives the CRL needs (lengths, INTEGER, Time, fixed OIDs);
- `entry`: one revokedCertificates element, encoded once at revocation time;
- `tbs`: the fields around the entries (TBSCertList framing, extensions, signature algorithm);
- `writer`: spool the entries to a file, hash, sign the digest, publish the file atomically;
- `cache`: the previous issue's entries, so the daily issue streams only the new rows;
- `issue`: one CA's CRL or ARL from the database: number, stream, sign, archive, audit;
- `config`: validity, period and warning thresholds;
- `compromise`: what to issue at once after a CA key compromise.

Nothing here imports the CLI, and the package root imports nothing, so `revoca crl issue`
pays only for the modules it uses.
"""
