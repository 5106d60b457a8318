"""The RA API: municipal RA terminals file revocation requests (seed 004 3.4, 4.9)."""
