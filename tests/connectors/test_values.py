"""The small value readers connectors share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alertbridge.connectors._values import epoch_millis, field_text, field_texts, is_millis, iso_time, json_cursor, text, texts
from alertbridge.errors import Permanent


def test_text_readers_strip_and_drop_blanks():
    assert text("  host-1 ") == "host-1"
    assert [text(v) for v in ("", "   ", None, 7, ["x"])] == [None] * 5
    assert field_text({"a": " x "}, "a") == "x" and field_text({}, "a") is None
    assert field_texts({"a": [" x", "", 3, "y "]}, "a") == ["x", "y"] and field_texts({"a": "x"}, "a") == []


def test_list_and_time_readers():
    assert texts([" a", "", 3, None, "b "]) == ["a", "b"] and texts("a") == []
    assert iso_time("2022-01-05T10:05:56.020Z") == datetime(2022, 1, 5, 10, 5, 56, 20000, tzinfo=UTC)
    assert iso_time("2022-01-05T10:05:56") == datetime(2022, 1, 5, 10, 5, 56, tzinfo=UTC)  # naive means UTC
    assert [iso_time(v) for v in ("yesterday", "", None, 5)] == [None] * 4
    assert epoch_millis(1641377156020) == datetime(2022, 1, 5, 10, 5, 56, 20000, tzinfo=UTC)
    assert [epoch_millis(v) for v in (True, -1, 10**15, "1641377156020", 1.5)] == [None] * 5
    assert is_millis(0) and not is_millis(False)


def test_json_cursor_reads_ours_and_refuses_others():
    def valid(state):
        return isinstance(state.get("since"), int)

    assert json_cursor(None, "vendor", valid) is None
    assert json_cursor('{"since": 5, "offset": 0}', "vendor", valid) == {"since": 5, "offset": 0}
    for foreign in ("not json", "[1]", '{"since": "yesterday"}'):
        with pytest.raises(Permanent, match="vendor cursor .* is not one this connector wrote"):
            json_cursor(foreign, "vendor", valid)
