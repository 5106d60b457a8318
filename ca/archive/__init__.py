"""The archive (seed 004 5.5): certificates, CRLs/ARLs, revocation requests and the provision
and OCSP query histories, each committed to by a time-stamp from revoca's own authority."""
