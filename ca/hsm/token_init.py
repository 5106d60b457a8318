"""C_InitToken and C_InitPIN, called through ctypes: the PINs never reach a command line.

python-pkcs11 (0.10) has no binding for these two calls, and softhsm2-util takes the PINs
only as arguments or from a terminal, so that every local user could read them from the
process list during `revoca init` (issue 12).  This module calls the PKCS#11 module's own
exported functions in this process instead (PKCS#11 v2.40 sections 5.4 and 5.6), on a module
python-pkcs11 has already initialised (dlopen returns the same library, so C_Initialize here
answers CKR_CRYPTOKI_ALREADY_INITIALIZED, which is fine).  tests/integration/hsm checks the
result with python-pkcs11: the token has the label, the user PIN opens it, the SO PIN is set.
"""

from __future__ import annotations

import ctypes

from ca.errors import TokenError

CK_ULONG = ctypes.c_ulong
CKR_OK = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKU_SO = 0
LABEL_BYTES = 32  # CK_TOKEN_INFO.label: 32 bytes, blank-padded, not NUL-terminated


def _functions(module: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(module)
    for name, args in (
        ("C_Initialize", [ctypes.c_void_p]),
        ("C_InitToken", [CK_ULONG, ctypes.c_char_p, CK_ULONG, ctypes.c_char_p]),
        ("C_OpenSession", [CK_ULONG, CK_ULONG, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(CK_ULONG)]),
        ("C_Login", [CK_ULONG, CK_ULONG, ctypes.c_char_p, CK_ULONG]),
        ("C_InitPIN", [CK_ULONG, ctypes.c_char_p, CK_ULONG]),
        ("C_Logout", [CK_ULONG]),
        ("C_CloseSession", [CK_ULONG]),
    ):
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, CK_ULONG
    return lib


def _check(rv: int, what: str) -> None:
    if rv != CKR_OK:
        raise TokenError(f"the PKCS#11 module refused {what} (CKR 0x{rv:x})")


def init_token(module: str, slot_id: int, label: str, *, so_pin: str, user_pin: str) -> None:
    """Initialise the token in `slot_id` with `label` and both PINs (all of it erased first)."""
    encoded_label = label.encode("utf-8")
    if len(encoded_label) > LABEL_BYTES:
        raise TokenError(f"token label {label!r} is longer than {LABEL_BYTES} bytes")
    so, user = so_pin.encode("utf-8"), user_pin.encode("utf-8")
    lib = _functions(module)
    rv = lib.C_Initialize(None)
    if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
        _check(rv, "C_Initialize")
    _check(lib.C_InitToken(slot_id, so, len(so), encoded_label.ljust(LABEL_BYTES, b" ")), "C_InitToken")
    session = CK_ULONG()
    _check(lib.C_OpenSession(slot_id, CKF_SERIAL_SESSION | CKF_RW_SESSION, None, None, ctypes.byref(session)),
           "C_OpenSession")
    try:
        _check(lib.C_Login(session, CKU_SO, so, len(so)), "the security officer's login")
        try:
            _check(lib.C_InitPIN(session, user, len(user)), "C_InitPIN")
        finally:
            lib.C_Logout(session)
    finally:
        lib.C_CloseSession(session)
