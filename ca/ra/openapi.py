"""The RA API's OpenAPI 3.1 description, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from ca.enums import AgentAuthority, RecordChangeEvent
from ca.revocation.reasons import RFC_NAME
from ca.revocation.record_changes import REASON_OF

_ERROR = {"description": "One line saying what was wrong", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}
_OUT_OF_SCOPE = {**_ERROR, "description": "One line saying what was wrong: not a terminal or clerk allowed here, "
                 "a CA-level certificate, or a certificate of a CA this terminal is not bound to (audited as "
                 "ra.out_of_scope)"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "revoca RA API",
        "version": "1",
        "description": "Revocation requests from municipal RA terminals. Terminals authenticate with the TLS "
                       "client certificate `revoca ra add` issued them; each request also names the receptionist "
                       "with HTTP Basic authentication. A 201/200 answer is sent only after the revocation is "
                       "committed. A terminal acts only for the CAs it was registered for (`revoca ra add --ca`): "
                       "a certificate of another CA is refused with 403.",
    },
    "components": {
        "securitySchemes": {
            "terminal": {"type": "mutualTLS", "description": "client certificate of a registered RA terminal"},
            "receptionist": {"type": "http", "scheme": "basic",
                             "description": "operator name and password; the operator needs the receptionist role. "
                                            "A password past [operators] max_password_age_days is refused (403). "
                                            "Within warn_days of that age every answer carries the headers "
                                            "Revoca-Password-Expires (ISO 8601) and Revoca-Password-Warning (one "
                                            "line): show them to the clerk. Every login is audited."},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            # a filing never carries cACompromise (2): that is the CA-compromise procedure's alone
            "Reason": {"oneOf": [
                {"type": "string", "enum": ["keyCompromise", "affiliationChanged", "superseded",
                                            "cessationOfOperation"]},
                {"type": "integer", "enum": [1, 3, 4, 5]}]},
            "RevocationRequest": {
                "type": "object",
                "required": ["reason", "applicant", "identity_document_checked", "idempotency_key"],
                "properties": {
                    "issuer_ca": {"type": "string", "description": "name of the issuing CA, e.g. tokyo"},
                    "serial": {"type": "string", "pattern": "^[0-9a-fA-F:]+$"},
                    "certificate": {"type": "string", "description": "the certificate, PEM or base64 DER, "
                                                                      "instead of issuer_ca and serial"},
                    "reason": {"$ref": "#/components/schemas/Reason"},
                    "applicant": {"type": "string", "enum": ["self", "agent"]},
                    "agent_authority": {"type": "string", "enum": [a.value for a in AgentAuthority],
                                        "description": "required when applicant is agent, absent otherwise: the "
                                                       "document that showed the agent's authority (seed 004 "
                                                       "1.3.2)"},
                    "identity_document_checked": {"type": "boolean", "const": True},
                    "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 128},
                },
            },
            "RecordChangeRequest": {
                "type": "object",
                "description": "The municipality recorded a change of the resident record (seed 004 4.9.1(2)). "
                               "No applicant; the reason follows from the event: "
                               + "; ".join(f"{e.value}: {RFC_NAME[r]}" for e, r in REASON_OF.items()),
                "required": ["event", "idempotency_key"],
                "properties": {
                    "issuer_ca": {"type": "string", "description": "name of the issuing CA, e.g. tokyo"},
                    "serial": {"type": "string", "pattern": "^[0-9a-fA-F:]+$"},
                    "certificate": {"type": "string", "description": "the certificate, PEM or base64 DER, "
                                                                      "instead of issuer_ca and serial"},
                    "event": {"type": "string", "enum": [e.value for e in RecordChangeEvent]},
                    "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 128},
                },
                "not": {"anyOf": [{"required": [f]} for f in ("reason", "applicant", "identity_document_checked",
                                                               "agent_authority")]},
            },
            "Receipt": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"}, "request_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string",
                               "enum": ["completed", "pending-review", "pending-approval", "rejected"]},
                    "channel": {"type": "string"}, "issuer_ca": {"type": "string"}, "serial": {"type": "string"},
                    "subject": {"type": "string"}, "reason": {"type": "integer"},
                    "record_change_event": {"type": "string", "description": "record changes only"},
                    "accepted_at": {"type": "string", "format": "date-time"},
                    "revocation_time": {"type": ["string", "null"], "format": "date-time"},
                    "receipt": {"type": ["string", "null"], "description": "base64 CMS SignedData over the "
                                "receipt fields, signed by the CA receipt key (openssl cms -verify)"},
                    "receipt_error": {"type": "string"},
                },
            },
        },
    },
    "paths": {
        "/v1/revocations": {
            "post": {
                "summary": "File a revocation (subscriber certificates; answered after commit)",
                "security": [{"terminal": [], "receptionist": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RevocationRequest"}}}},
                "responses": {
                    "201": {"description": "revoked now", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "200": {"description": "the same idempotency key again: the original answer"},
                    "401": _ERROR, "403": _OUT_OF_SCOPE, "404": _ERROR, "409": _ERROR, "413": _ERROR, "422": _ERROR,
                },
            },
            "get": {
                "summary": "This terminal's requests, newest first (with a receptionist: the list names citizens)",
                "security": [{"terminal": [], "receptionist": []}],
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": {"description": "requests"}, "401": _ERROR, "403": _ERROR},
            },
        },
        "/v1/record-changes": {
            "post": {
                "summary": "Revoke on a resident-record change (the municipality; no applicant; answered after "
                           "commit)",
                "security": [{"terminal": [], "receptionist": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RecordChangeRequest"}}}},
                "responses": {
                    "201": {"description": "revoked now", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "200": {"description": "the same idempotency key again: the original answer"},
                    "401": _ERROR, "403": _OUT_OF_SCOPE, "404": _ERROR, "409": _ERROR, "413": _ERROR,
                    "422": {**_ERROR, "description": "One line saying what was wrong, e.g. naming an unknown event"},
                },
            },
        },
        "/v1/revocations/{request_id}": {
            "get": {
                "summary": "Status and signed receipt of one request of this terminal",
                "security": [{"terminal": []}],
                "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the receipt", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Receipt"}}}}, "404": _ERROR},
            },
        },
        "/v1/online-revocations": {
            "post": {
                "summary": "The subscriber revokes their own certificate (CMS SignedData with their key)",
                "requestBody": {"required": True, "content": {"application/pkcs7-mime": {
                    "schema": {"type": "string", "format": "binary"}}}},
                "responses": {"201": {"description": "revoked now"}, "403": _ERROR, "404": _ERROR, "422": _ERROR},
            },
        },
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}},
    },
}
