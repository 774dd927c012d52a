"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status.

Example:
    >>> raise APIError("unknown vector 'melbo/9'", param="steering.vectors[0].name", code="unknown_vector")
"""

from __future__ import annotations


class APIError(Exception):
    """A request problem the client can fix; ``status`` is the HTTP code (400 unless said otherwise)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """The JSON body OpenAI clients parse into ``openai.APIError``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def check_text(text: str, param: str) -> str:
    """Refuse strings that cannot be encoded as UTF-8 (lone surrogates such as ``"\\ud800"`` in the JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise APIError(f"{param} contains a character that is not valid Unicode text (position {exc.start}: "
                       "a lone surrogate); send UTF-8 text", param=param, code="invalid_text") from None
    return text
