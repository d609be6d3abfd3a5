from __future__ import annotations

from reconciler.spec.diagnostics import Position
from reconciler.spec.yaml_source import MAX_DEPTH, read_yaml_documents


def test_positions_of_values_and_keys_are_recorded() -> None:
    (document,), problems = read_yaml_documents("f.yaml", b"a:\n  b: [1, 2]\n  c: x\n")
    assert problems == []
    assert document.data == {"a": {"b": [1, 2], "c": "x"}}
    assert document.value_positions[("a", "b", 1)] == Position(2, 10)
    assert document.key_positions[("a", "c")] == Position(3, 3)
    assert document.position_of(("a", "missing", 3)) == Position(2, 3)


def test_several_documents_per_file_keep_their_own_positions() -> None:
    documents, problems = read_yaml_documents("f.yaml", b"a: 1\n---\nb: 2\n---\n")
    assert problems == []
    assert [d.data for d in documents] == [{"a": 1}, {"b": 2}]
    assert documents[1].start == Position(3, 1)


def test_merge_keys_apply_with_explicit_keys_winning() -> None:
    text = b"base: &b {p: 1, q: 2}\nderived:\n  <<: *b\n  q: 5\n"
    (document,), problems = read_yaml_documents("f.yaml", text)
    assert problems == []
    assert document.data["derived"] == {"p": 1, "q": 5}


def test_recursive_alias_is_an_error_not_a_hang() -> None:
    _, problems = read_yaml_documents("f.yaml", b"a: &x [1, *x]\n")
    assert len(problems) == 1
    assert "recursive alias" in problems[0].message


def test_dates_stay_strings() -> None:
    (document,), _ = read_yaml_documents("f.yaml", b"since: 2026-01-01\n")
    assert document.data == {"since": "2026-01-01"}


def test_utf8_byte_order_mark_is_accepted() -> None:
    (document,), problems = read_yaml_documents("f.yaml", b"\xef\xbb\xbfa: 1\n")
    assert problems == []
    assert document.data == {"a": 1}


def test_plain_exponent_numbers_are_numbers_as_in_yaml_1_2() -> None:
    (document,), _ = read_yaml_documents("f.yaml", b"a: 2.0e6\nb: 2e9\nc: '2e9'\n")
    assert document.data == {"a": 2.0e6, "b": 2e9, "c": "2e9"}


def test_deep_nesting_is_refused_where_it_passes_the_limit() -> None:
    deep = b"a: " + b"[" * 500 + b"]" * 500 + b"\n"
    documents, problems = read_yaml_documents("f.yaml", deep)
    assert documents == []
    assert [p.render() for p in problems] == [
        f"f.yaml:1:{4 + MAX_DEPTH - 1}: nested deeper than {MAX_DEPTH} levels; refused"
    ]


def test_nesting_up_to_the_limit_reads() -> None:
    # The root mapping is one level; its value can nest MAX_DEPTH - 1 more.
    levels = MAX_DEPTH - 1
    (document,), problems = read_yaml_documents("f.yaml", b"a: " + b"[" * levels + b"]" * levels)
    assert problems == []
    assert document.data["a"] is not None


def test_documents_before_a_too_deep_one_are_kept() -> None:
    text = b"a: 1\n---\nb: " + b"[" * 100 + b"]" * 100 + b"\n"
    documents, problems = read_yaml_documents("f.yaml", text)
    assert [d.data for d in documents] == [{"a": 1}]
    assert [p.position for p in problems] == [Position(3, 4 + MAX_DEPTH - 1)]


def test_aliases_cannot_nest_deeper_than_the_limit() -> None:
    # Each line is shallow; expanding the aliases nests 300 levels deep.
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 300)]
    _, problems = read_yaml_documents("f.yaml", "\n".join(lines).encode())
    assert len(problems) == 1
    assert problems[0].message == f"nested deeper than {MAX_DEPTH} levels; refused"


def test_merge_keys_cannot_chain_deeper_than_the_limit() -> None:
    lines = ["m0: &m0 {k: 1}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}}}" for i in range(1, 1000)]
    _, problems = read_yaml_documents("f.yaml", "\n".join(lines).encode())
    assert len(problems) == 1
    assert problems[0].message == f"nested deeper than {MAX_DEPTH} levels; refused"


def test_a_mapping_that_merges_itself_is_an_error_not_a_crash() -> None:
    _, problems = read_yaml_documents("f.yaml", b"a: &x {k: 1, <<: *x}\n")
    assert len(problems) == 1
    assert "recursive alias" in problems[0].message
