"""revoca's own RFC 3161 time-stamp authority (with RFC 5816), token profile of seed 000 section 9.

`profile` holds what the token profile fixes, `request` reads TimeStampReq, `token` builds
and signs the TimeStampToken, `response` wraps it in a TimeStampResp, `authority` stamps and
keeps every token, `certificate` issues the TSA's certificate, `verify` checks a token
independently of how it was made, and `app`/`server` answer RFC 3161 over HTTP.
"""
