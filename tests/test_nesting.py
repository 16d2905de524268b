"""Nesting limits of files from elsewhere: measured without recursion, brackets in strings and comments ignored."""

import pytest

from frozen_slt.config.settings import read_settings_file
from frozen_slt.errors import ConfigError, FrozenSLTError
from frozen_slt.nesting import (
    check_data_depth,
    check_text_depth,
    load_json,
    parse_limited,
)

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("kind, text", [("json", DEEP), ("yaml", DEEP), ("toml", "a = " + DEEP),
                                        ("yaml", "".join(" " * i + f"k{i}:\n" for i in range(2000)) + " " * 2000 + "x: 1\n")])
def test_deep_text_is_refused_before_parsing(kind, text):
    with pytest.raises(FrozenSLTError, match="nests arrays or tables more than 3 deep, deeper than its format needs"):
        check_text_depth(text, kind, 3, "f", "tables")


@pytest.mark.parametrize("kind, text", [
    ("json", '{"a": {"b": "[[[[{{{{"}, "c": "\\"[[[["}'),
    ("toml", 'a = "[[[["  # [[[[\nb = \'[[[[\'\nc = """\n[[[[\n"""\n[t]\nd = [[1]]\n'),
    ("yaml", "a: '[[[['\nb: {c: [1]}\n"),
])
def test_brackets_in_strings_and_comments_do_not_count(kind, text):
    check_text_depth(text, kind, 3, "f", "tables")


def test_the_exact_limit_passes_and_one_more_level_is_refused():
    assert load_json('{"a": [{"b": 1}]}', 3, "f", "tables") == {"a": [{"b": 1}]}
    with pytest.raises(FrozenSLTError):
        load_json('{"a": [{"b": [1]}]}', 3, "f", "tables")


def test_a_recursion_error_the_scan_missed_is_the_same_refusal():
    def parse():
        raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(ConfigError, match="more than 2 deep"):
        parse_limited(parse, 2, "f", "tables", ConfigError)


def test_a_value_that_contains_itself_is_refused_not_walked_forever():
    loop = []
    loop.append(loop)
    with pytest.raises(FrozenSLTError, match="more than 5 deep"):
        check_data_depth(loop, 5, "f", "tables")


def test_a_yaml_alias_that_contains_itself_is_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("train: &a\n  lr: *a\n")
    with pytest.raises(ConfigError, match="more than 3 deep"):
        read_settings_file(tmp_path / "loop.yaml")


@pytest.mark.parametrize("name, text, needle", [
    ("dup.yaml", "lr: 0.1\nlr: 0.2\n", "gives the key 'lr' twice in one table"),
    ("dup.json", '{"train": {"lr": 0.1, "lr": 0.2}}', "gives the key 'lr' twice in one table"),
    ("dup.toml", "lr = 0.1\nlr = 0.2\n", "Cannot overwrite a value (at line 2"),  # tomllib's own refusal
])
def test_a_key_given_twice_is_refused(tmp_path, name, text, needle):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_settings_file(tmp_path / name)
    assert needle in str(caught.value)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    (tmp_path / "merge.yaml").write_text("base: &b {lr: 0.1}\ntrain:\n  <<: *b\n  lr: 0.2\n")
    assert read_settings_file(tmp_path / "merge.yaml")["train"] == {"lr": 0.2}
