"""Counting XLA compilations in a test (jax.monitoring's backend-compile events)."""

import jax


def count_compilations(fn) -> int:
    """The number of backend compilations while ``fn()`` runs."""
    events = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return len(events)
