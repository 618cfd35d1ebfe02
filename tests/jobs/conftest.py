"""The whole sandbox in-process, for the notification tests."""

import pytest

from support.notify_hub import sandbox_app


@pytest.fixture
def app():
    return sandbox_app()
