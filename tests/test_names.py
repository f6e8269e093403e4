"""Metric names and tags are checked once, at declaration, with messages that name the problem."""

from __future__ import annotations

import enum

import pytest

from instrument._names import check_name, check_tags, default_name


class TestCheckName:
    @pytest.mark.parametrize("name", ["a", "http.server.request.duration", "A-b_c/d.e", "x" * 255])
    def test_accepts_opentelemetry_instrument_names(self, name):
        """Names matching [A-Za-z][A-Za-z0-9_.\\-/]{0,254} are accepted unchanged."""
        assert name == check_name(name)

    @pytest.mark.parametrize("name", ["", "1abc", "_x", "has space", "ünïcode", "x" * 256, "a:b", ".a"])
    def test_rejects_other_names_naming_the_value(self, name):
        """A bad name raises ValueError whose message quotes the name."""
        with pytest.raises(ValueError, match="invalid metric name") as info:
            check_name(name)
        assert repr(name)[:50] in str(info.value)

    def test_rejects_non_strings_with_type_error(self):
        """A name that is not a str is a TypeError naming its type."""
        with pytest.raises(TypeError, match="must be a str, got int: 42"):
            check_name(42)


class Color(enum.IntEnum):
    RED = 1


class TestCheckTags:
    def test_sorted_canonical_tuple(self):
        """Tags become a tuple of (key, value) sorted by key, so order of the dict does not matter."""
        assert (("a", 1), ("b", "x")) == check_tags({"b": "x", "a": 1}, "m")
        assert check_tags({"a": 1, "b": "x"}, "m") == check_tags({"b": "x", "a": 1}, "m")

    def test_none_is_no_tags(self):
        assert () == check_tags(None, "m")

    def test_value_types(self):
        """str, int, float and bool are kept; subclasses (enums) become their plain type."""
        tags = dict(check_tags({"s": "v", "i": 3, "f": 0.5, "b": True, "e": Color.RED}, "m"))
        assert {"s": "v", "i": 3, "f": 0.5, "b": True, "e": 1} == tags
        assert type(tags["e"]) is int
        assert type(tags["b"]) is bool

    @pytest.mark.parametrize("value", [None, [1], {"a": 1}, b"bytes", object()])
    def test_rejects_other_value_types(self, value):
        """A tag value of another type is a TypeError naming the metric, the key and the value."""
        with pytest.raises(TypeError, match=r"tag 'k' of metric 'm' has a value of type"):
            check_tags({"k": value}, "m")

    @pytest.mark.parametrize("key", [1, "", None])
    def test_rejects_bad_keys(self, key):
        with pytest.raises(TypeError, match="tag keys of metric 'm' must be non-empty str"):
            check_tags({key: "v"}, "m")

    def test_rejects_non_mappings(self):
        with pytest.raises(TypeError, match="must be a mapping"):
            check_tags([("a", 1)], "m")

    @pytest.mark.parametrize("key", ["error", "otel.metric.overflow"])
    def test_reserved_keys(self, key):
        """Keys instrument sets itself cannot be given by the user."""
        with pytest.raises(ValueError, match="is reserved"):
            check_tags({key: "x"}, "m")


class TestDefaultName:
    def test_module_and_qualname(self):
        assert "payments.api.Charger.charge" == default_name("payments.api", "Charger.charge")

    def test_main_module_and_locals(self):
        """`__main__` reads as `main`; `<locals>` markers are dropped."""
        assert "main.outer.inner" == default_name("__main__", "outer.<locals>.inner")

    def test_result_is_always_valid(self):
        """Whatever the module and qualname, the default name passes check_name."""
        for module, qualname in [("_private", "_f"), (None, "<lambda>"), ("a.b", "C.<genexpr>")]:
            assert check_name(default_name(module, qualname))
