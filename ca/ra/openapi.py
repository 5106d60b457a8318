"""The RA API's OpenAPI 3.1 description, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {"description": "One line saying what was wrong", "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "revoca RA API",
        "version": "1",
        "description": "Revocation requests from municipal RA terminals. Terminals authenticate with the TLS "
                       "client certificate `revoca ra add` issued them; each request also names the receptionist "
                       "with HTTP Basic authentication. A 201/200 answer is sent only after the revocation is "
                       "committed.",
    },
    "components": {
        "securitySchemes": {
            "terminal": {"type": "mutualTLS", "description": "client certificate of a registered RA terminal"},
            "receptionist": {"type": "http", "scheme": "basic",
                             "description": "operator name and password; the operator needs the receptionist role"},
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
                    "identity_document_checked": {"type": "boolean", "const": True},
                    "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 128},
                },
            },
            "Receipt": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"}, "request_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string",
                               "enum": ["completed", "pending-review", "pending-approval", "rejected"]},
                    "channel": {"type": "string"}, "issuer_ca": {"type": "string"}, "serial": {"type": "string"},
                    "subject": {"type": "string"}, "reason": {"type": "integer"},
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
                    "401": _ERROR, "403": _ERROR, "404": _ERROR, "409": _ERROR, "413": _ERROR, "422": _ERROR,
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
