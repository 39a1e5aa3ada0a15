"""Given a `[console] keymap` that would leave the operator with a key that does
nothing, two actions on one key or no way to quit, when check-config reads it, then
it exits 2 naming the key; a sound remap passes."""

from __future__ import annotations

import pytest

from engine.config import CONSOLE_BINDINGS, keymap_problems

REFUSED = {
    "unknown action": (
        '[console]\nkeymap = { aprove = "y" }\n',
        ["console.keymap.aprove is not a binding id", "did you mean approve?"],
    ),
    "two actions on one key": (
        '[console]\nkeymap = { approve = "r" }\n',
        ["key 'r' is bound to approve and reject"],
    ),
    "two actions on one key, both remapped": (
        '[console]\nkeymap = { approve = "y", reject = "x,y" }\n',
        ["key 'y' is bound to approve and reject"],
    ),
    "punctuation spelled two ways": (
        '[console]\nkeymap = { filter = "?" }\n',
        ["key 'question_mark' is bound to filter and help"],
    ),
    "no quit": (
        '[console]\nkeymap = { quit = "" }\n',
        ["console.keymap.quit has no key"],
    ),
    "no kill switch": (
        '[console]\nkeymap = { kill_switch = "" }\n',
        ["console.keymap.kill_switch has no key"],
    ),
    "a key the dialogs use": (
        '[console]\nkeymap = { approve = "tab" }\n',
        ["console.keymap.approve: key 'tab' is used by the console itself"],
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_bad_keymap_is_refused_naming_the_key(case, cli, write_config):
    text, expected = REFUSED[case]
    result = cli("check-config", write_config(text))
    assert result.code == 2, f"check-config accepted {text!r}: {result.out[-300:]}"
    joined = "\n".join(result.errors)
    for fragment in expected:
        assert fragment in joined, f"expected {fragment!r} in:\n{joined}"


def test_a_sound_remap_passes(cli, write_config):
    text = '[console]\nkeymap = { approve = "y", reject = "x", kill_switch = "ctrl+x", quit = "Q,ctrl+q" }\n'
    result = cli("check-config", write_config(text))
    assert result.code == 0, result.err
    assert result.errors == []


def test_swapping_two_keys_is_not_a_clash():
    assert keymap_problems({"approve": "r", "reject": "a"}) == []


def test_the_defaults_have_one_key_per_action():
    assert keymap_problems({}) == []
    assert len(set(CONSOLE_BINDINGS.values())) == len(CONSOLE_BINDINGS)
