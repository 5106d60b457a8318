"""Bringing in the subscriber certificates the regional CAs issued before revoca: files read one
certificate at a time (certificate_files) and checked, stored and journalled in batches (importer)."""
