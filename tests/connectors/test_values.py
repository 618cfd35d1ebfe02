"""The small value readers connectors share."""

from __future__ import annotations

import pytest

from alertbridge.connectors._values import field_text, field_texts, json_cursor, text
from alertbridge.errors import Permanent


def test_text_readers_strip_and_drop_blanks():
    assert text("  host-1 ") == "host-1"
    assert [text(v) for v in ("", "   ", None, 7, ["x"])] == [None] * 5
    assert field_text({"a": " x "}, "a") == "x" and field_text({}, "a") is None
    assert field_texts({"a": [" x", "", 3, "y "]}, "a") == ["x", "y"] and field_texts({"a": "x"}, "a") == []


def test_json_cursor_reads_ours_and_refuses_others():
    def valid(state):
        return isinstance(state.get("since"), int)

    assert json_cursor(None, "vendor", valid) is None
    assert json_cursor('{"since": 5, "offset": 0}', "vendor", valid) == {"since": 5, "offset": 0}
    for foreign in ("not json", "[1]", '{"since": "yesterday"}'):
        with pytest.raises(Permanent, match="vendor cursor .* is not one this connector wrote"):
            json_cursor(foreign, "vendor", valid)
