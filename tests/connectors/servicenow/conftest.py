from support.snow import snow  # noqa: F401 - the fixture
