"""@timed and @counted: what they measure, and that the decorated function is unchanged otherwise."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time

import pytest

import instrument
from instrument.testing import capture


class Boom(Exception):
    pass


class TestTimedFunctions:
    def test_default_name_and_duration(self, exported):
        """Bare @timed names the metric <module>.<qualname> and records seconds."""

        @instrument.timed
        def nap():
            time.sleep(0.02)
            return "rested"

        with capture() as captured:
            assert "rested" == nap()
        h = captured.histogram("tests.test_decorate.TestTimedFunctions.test_default_name_and_duration.nap")
        assert 1 == h.count
        assert 0.02 <= h.sum < 1.0

    def test_explicit_name_and_tags(self):
        @instrument.timed("decorate.explicit", tags={"provider": "acme"})
        def f(x, *, y=2):
            return x + y

        with capture() as captured:
            assert 5 == f(3)
            assert 4 == f(1, y=3)
        assert 2 == captured.histogram("decorate.explicit", {"provider": "acme"}).count

    def test_exception_propagates_unchanged_and_is_tagged(self):
        """The same exception object propagates; the call is recorded with error=<class>."""
        raised = Boom("no")

        @instrument.timed("decorate.raises")
        def f():
            raise raised

        with capture() as captured:
            with pytest.raises(Boom) as info:
                f()
            assert info.value is raised
        assert 1 == captured.histogram("decorate.raises", {"error": "tests.test_decorate.Boom"}).count
        assert [] == captured.find("decorate.raises", {})[1:]  # only the error series

    def test_builtin_exception_names_are_short(self):
        @instrument.timed("decorate.keyerror")
        def f():
            return {}["missing"]

        with capture() as captured:
            with pytest.raises(KeyError):
                f()
        assert 1 == captured.histogram("decorate.keyerror", {"error": "KeyError"}).count

    def test_metadata_preserved(self):
        """Signature, __wrapped__, __name__, __qualname__, __doc__ and attributes survive."""

        def original(a: int, b: str = "x", *args, c: float = 1.0, **kw) -> str:
            """Docstring."""
            return b * a

        original.custom = "kept"
        wrapped = instrument.timed("decorate.meta")(original)
        assert wrapped.__wrapped__ is original
        assert "original" == wrapped.__name__
        assert original.__qualname__ == wrapped.__qualname__
        assert "Docstring." == wrapped.__doc__
        assert "kept" == wrapped.custom
        assert inspect.signature(original) == inspect.signature(wrapped)
        assert wrapped is not original

    def test_methods_classmethods_staticmethods(self):
        """Methods bind as usual; @timed works above or below @classmethod/@staticmethod."""

        class Service:
            factor = 3

            @instrument.timed("decorate.method")
            def method(self, x):
                return x * self.factor

            @instrument.timed("decorate.classmethod")
            @classmethod
            def klass(cls, x):
                return x * cls.factor

            @classmethod
            @instrument.timed("decorate.classmethod.inner")
            def klass_inner(cls, x):
                return x + cls.factor

            @instrument.timed("decorate.staticmethod")
            @staticmethod
            def static(x):
                return -x

        s = Service()
        with capture() as captured:
            assert 6 == s.method(2)
            assert 6 == Service.klass(2)
            assert 5 == s.klass_inner(2)
            assert -2 == Service.static(2)
            assert -2 == s.static(2)
        for name, n in [("decorate.method", 1), ("decorate.classmethod", 1),
                        ("decorate.classmethod.inner", 1), ("decorate.staticmethod", 2)]:
            assert n == captured.histogram(name).count

    def test_default_name_of_method(self):
        class Ledger:
            @instrument.timed
            def flush(self):
                return 1

        with capture() as captured:
            Ledger().flush()
        assert any(n.endswith("test_default_name_of_method.Ledger.flush") for n in captured.names())


class TestTimedCoroutines:
    def test_timed_to_completion_not_creation(self):
        """A coroutine is measured until it finishes, including awaited sleeps."""

        @instrument.timed("decorate.coro")
        async def slow(x):
            await asyncio.sleep(0.05)
            return x

        assert inspect.iscoroutinefunction(slow)
        with capture() as captured:
            coro = slow(7)
            time.sleep(0.01)  # creation is not measured...
            assert 7 == asyncio.run(coro)
        h = captured.histogram("decorate.coro")
        assert 1 == h.count
        assert 0.05 <= h.sum < 0.5

    def test_coroutine_exception(self):
        @instrument.timed("decorate.coro.raises")
        async def bad():
            await asyncio.sleep(0)
            raise Boom

        with capture() as captured:
            with pytest.raises(Boom):
                asyncio.run(bad())
        assert 1 == captured.histogram("decorate.coro.raises", {"error": "tests.test_decorate.Boom"}).count

    def test_cancelled_coroutine_is_tagged(self):
        @instrument.timed("decorate.coro.cancel")
        async def forever():
            await asyncio.sleep(10)

        async def main():
            task = asyncio.create_task(forever())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with capture() as captured:
            asyncio.run(main())
        assert 1 == captured.histogram("decorate.coro.cancel", {"error": "asyncio.exceptions.CancelledError"}).count

    def test_async_method(self):
        class Client:
            @instrument.timed("decorate.coro.method")
            async def get(self):
                return self

        c = Client()
        with capture() as captured:
            assert c is asyncio.run(c.get())
        assert inspect.iscoroutinefunction(Client.get)
        assert 1 == captured.histogram("decorate.coro.method").count


class TestTimedGenerators:
    def test_timed_to_exhaustion(self):
        @instrument.timed("decorate.gen")
        def numbers(n):
            for i in range(n):
                time.sleep(0.01)
                yield i
            return "done"

        assert inspect.isgeneratorfunction(numbers)
        with capture() as captured:
            assert [0, 1, 2] == list(numbers(3))
        h = captured.histogram("decorate.gen")
        assert 1 == h.count
        assert 0.03 <= h.sum < 0.5

    def test_send_throw_and_return_value_forwarded(self):
        """send(), throw() and the generator's return value pass through the wrapper."""

        @instrument.timed("decorate.gen.send")
        def echo():
            received = []
            try:
                while True:
                    received.append((yield len(received)))
            except Boom:
                yield "caught"
            return received

        with capture() as captured:
            g = echo()
            assert 0 == next(g)
            assert 1 == g.send("a")
            assert 2 == g.send("b")
            assert "caught" == g.throw(Boom())
            with pytest.raises(StopIteration) as stop:
                next(g)
            assert ["a", "b"] == stop.value.value
        assert 1 == captured.histogram("decorate.gen.send").count

    def test_close_is_a_normal_end(self):
        """Closing a generator early records the duration without an error tag."""

        @instrument.timed("decorate.gen.close")
        def infinite():
            while True:
                yield 1

        with capture() as captured:
            g = infinite()
            next(g)
            g.close()
        assert 1 == captured.histogram("decorate.gen.close").count

    def test_generator_error(self):
        @instrument.timed("decorate.gen.raises")
        def bad():
            yield 1
            raise Boom

        with capture() as captured:
            with pytest.raises(Boom):
                list(bad())
        assert 1 == captured.histogram("decorate.gen.raises", {"error": "tests.test_decorate.Boom"}).count


class TestTypesCoroutine:
    def test_generator_based_coroutine_stays_awaitable(self):
        """A @types.coroutine generator is awaitable before and after decoration."""
        import types

        @instrument.timed("decorate.types.coroutine")
        @types.coroutine
        def legacy():
            yield
            return 42

        async def main():
            return await legacy()

        with capture() as captured:
            assert 42 == asyncio.run(main())
        assert 1 == captured.histogram("decorate.types.coroutine").count


class TestTimedAsyncGenerators:
    def test_timed_to_exhaustion(self):
        @instrument.timed("decorate.agen")
        async def ticks(n):
            for i in range(n):
                await asyncio.sleep(0.01)
                yield i

        assert inspect.isasyncgenfunction(ticks)

        async def main():
            return [i async for i in ticks(3)]

        with capture() as captured:
            assert [0, 1, 2] == asyncio.run(main())
        h = captured.histogram("decorate.agen")
        assert 1 == h.count
        assert 0.03 <= h.sum < 0.5

    def test_asend_athrow_aclose(self):
        @instrument.timed("decorate.agen.protocol")
        async def echo():
            try:
                while True:
                    got = yield "ready"
                    yield got
            except Boom:
                yield "caught"

        async def main():
            g = echo()
            assert "ready" == await g.asend(None)
            assert "x" == await g.asend("x")
            assert "caught" == await g.athrow(Boom())
            await g.aclose()

        with capture() as captured:
            asyncio.run(main())
        assert 1 == captured.histogram("decorate.agen.protocol").count

    def test_async_generator_error(self):
        @instrument.timed("decorate.agen.raises")
        async def bad():
            yield 1
            raise Boom

        async def main():
            async for _ in bad():
                pass

        with capture() as captured:
            with pytest.raises(Boom):
                asyncio.run(main())
        assert 1 == captured.histogram("decorate.agen.raises", {"error": "tests.test_decorate.Boom"}).count


class TestCounted:
    def test_counts_calls_and_errors(self):
        @instrument.counted("decorate.counted")
        def maybe(fail):
            if fail:
                raise Boom
            return "ok"

        with capture() as captured:
            for _ in range(3):
                assert "ok" == maybe(False)
            with pytest.raises(Boom):
                maybe(True)
        assert 3 == captured.value("decorate.counted")
        assert 1 == captured.value("decorate.counted", {"error": "tests.test_decorate.Boom"})

    def test_counted_coroutine(self):
        @instrument.counted("decorate.counted.coro")
        async def f():
            return 1

        assert inspect.iscoroutinefunction(f)
        with capture() as captured:
            asyncio.run(f())
        assert 1 == captured.value("decorate.counted.coro")


class TestDeclarationErrors:
    def test_bad_name_fails_at_decoration(self):
        """A bad metric name raises when the decorator is applied, not when the function runs."""
        with pytest.raises(ValueError, match="invalid metric name 'bad name'"):
            instrument.timed("bad name")

    def test_bad_tags_fail_at_decoration(self):
        with pytest.raises(TypeError, match="tag 'k' of metric 'decorate.badtags'"):
            instrument.timed("decorate.badtags", tags={"k": [1]})

    def test_kind_conflict(self):
        """A name declared as a timer cannot be reused as a counter."""
        instrument.timed("decorate.conflict")(lambda: None)
        with pytest.raises(ValueError, match="already declared as a timer"):
            instrument.count("decorate.conflict")

    def test_not_callable(self):
        with pytest.raises(TypeError, match="decorates functions"):
            instrument.timed("decorate.notcallable")(42)

    def test_name_must_be_str(self):
        with pytest.raises(TypeError, match="takes a metric name"):
            instrument.timed(42)

    def test_partial_needs_a_name(self):
        """Objects without a name get a message that says to pass one."""
        p = functools.partial(int, base=2)
        with pytest.raises(TypeError, match="pass one"):
            instrument.timed(p)
        assert 5 == instrument.timed("decorate.partial")(p)("101")
