"""Text from outside (arguments, stdin, request bodies) checked before a tokenizer sees it."""

from t2l.errors import T2LError


def require_utf8(text: str, what: str) -> str:
    """`text` unchanged if it is valid Unicode. Python decodes undecodable bytes of argv and stdin into lone
    surrogates (U+DC80-U+DCFF), which tokenizers reject with a traceback; refuse them here, naming `what`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"U+{ord(bad):04X}"
        raise T2LError(
            f"{what} is not UTF-8 text ({byte} at character {e.start + 1}); write it in UTF-8, e.g. set "
            "your terminal or file to UTF-8"
        ) from None
    return text


def decode_utf8(data: bytes, what: str) -> str:
    """Bytes read from stdin or a file as UTF-8, or one error naming `what` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise T2LError(
            f"{what} is not UTF-8 text (byte 0x{data[e.start]:02x} at byte {e.start + 1}); write it in "
            "UTF-8, e.g. set your terminal or file to UTF-8"
        ) from None
