"""Disclosure to the subscriber (seed 004 9.4.7.1): every record revoca holds about a subscriber's
certificate, as a bilingual (Japanese and English) report for the clerk to hand over."""
