"""DER shared by the CRL, OCSP and TSA code: primitives for streamed encoding, algorithm
identifiers, and the one set of errors a parser of outside DER input may raise."""
