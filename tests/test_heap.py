"""glibc heap settings: the arena cap is applied once, and never over the user's own setting."""

from lipparse_rt import heap


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append(("mallopt", option, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_limit_arenas_sets_glibcs_arena_max(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(heap, "_libc", lambda: libc)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    heap.limit_arenas(2)
    assert libc.calls == [("mallopt", -8, 2)]  # M_ARENA_MAX


def test_limit_arenas_leaves_the_users_setting(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(heap, "_libc", lambda: libc)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    heap.limit_arenas(2)
    assert libc.calls == []


def test_without_glibc_both_do_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_libc", lambda: object())  # a C library with neither function
    heap.limit_arenas()
    heap.release_freed()


def test_release_freed_trims_the_heap(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(heap, "_libc", lambda: libc)
    heap.release_freed()
    assert libc.calls == [("malloc_trim", 0)]
