"""DER shared by the CRL, OCSP, TSA and CVS code and the RA's receipts: primitives for streamed
encoding, algorithm identifiers, the one CMS SignedData builder (cms), and the one set of errors a
parser of outside DER input may raise."""
