"""A CA's end of life (seed 004 5.6, 5.8): the "no new keys" policy while it winds down
(key_policy) and its termination once nothing it signed is still valid (termination)."""
