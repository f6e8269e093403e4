"""Imported by Python at start-up under `instrument run`.

It sets instrument up from the INSTRUMENT_* variables, then runs the application's
own `sitecustomize` (the next one on sys.path), exactly once. A set-up error is
reported on stderr and the program runs uninstrumented; it never stops the program.
"""


def _start() -> None:
    import sys

    try:
        import instrument  # reads INSTRUMENT_*
        from instrument._config import settings

        if settings.error is not None:
            raise settings.error
        if settings.current.enabled:
            import instrument.auto
            from instrument.integrations import _uwsgi_watch

            instrument.auto.install()
            _uwsgi_watch.watch()  # uwsgi: made without an import, forks from C
            if settings.current.exporters:
                from instrument._runtime import RUNTIME

                # The exporters, and all they import, are created here in the main
                # thread, before the program can fork; threads start on the first record.
                RUNTIME.prepare()
    except Exception as exc:
        sys.stderr.write(f"instrument: not instrumenting this process: {exc}\n")


def _chain() -> None:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start()
_chain()
