"""The resource: attributes from OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME and the option."""

from __future__ import annotations

import pytest

from instrument._config import ConfigurationError, from_arguments, from_environ
from instrument._resource import attributes, parse_pairs


class TestAttributes:
    def test_pairs_are_percent_decoded_and_malformed_entries_skipped(self):
        """OTEL_RESOURCE_ATTRIBUTES' form: key=value by commas, values percent-decoded, as the SDK reads it."""
        assert {"team": "pay ments", "region": "eu,west"} == parse_pairs("team=pay%20ments,junk,=x,region=eu%2Cwest")

    def test_configured_over_service_name_over_resource_attributes(self):
        """configure(resource=...) wins over OTEL_SERVICE_NAME, which wins over OTEL_RESOURCE_ATTRIBUTES."""
        environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,service.version=1,team=x", "OTEL_SERVICE_NAME": "b"}
        found = attributes({"service.version": "2"}, environ)
        assert {"service.name": "b", "service.version": "2", "team": "x"} == found
        assert {} == attributes({}, {})

    def test_the_option_from_the_environment_and_from_configure(self):
        """INSTRUMENT_RESOURCE takes the same form; configure() takes a mapping too."""
        environ = {"INSTRUMENT_RESOURCE": "service.name=payments"}
        assert {"resource": {"service.name": "payments"}} == from_environ(environ)
        assert {"resource": {"k": "1"}} == from_arguments({"resource": {"k": 1}})
        with pytest.raises(ConfigurationError, match="INSTRUMENT_RESOURCE has an entry without 'key=value'"):
            from_environ({"INSTRUMENT_RESOURCE": "service.name"})
