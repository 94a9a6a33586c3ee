"""The dataset identity is defined once (dgen_py.identity.FIELDS): the command line, the
manifest and the Generator all follow that table."""

import dataclasses
import inspect
import json

import pytest

import dgen_py
from dgen_py import Generator, Identity, _core, cli, identity
from dgen_py.cli import args as cli_args, report

# A value other than the plain one for every field, in one identity the core accepts.
SAMPLE = dict(seed=7, size=1 << 20, dedup_ratio=2.0, compress_ratio=3.0, dedup_unit=8192,
              dedup_run=4, dedup_shift=True, dedup_skew=0.5, generation=2, change_rate=0.25,
              dedup_window=16, content="text", format_version=3)


def flag_text(f, value) -> list[str]:
    return [f.option] if f.parse is None else [f.option, str(value)]


def test_every_field_has_a_sample_value_away_from_its_plain_one():
    assert list(SAMPLE) == [f.name for f in identity.FIELDS]
    for f in identity.FIELDS:
        assert SAMPLE[f.name] != f.plain, f.name


@pytest.mark.parametrize("f", identity.FIELDS, ids=lambda f: f.name)
def test_dgen_write_takes_each_field_with_the_tables_default(f):
    parser = cli.build_parser()
    plain = parser.parse_args(["write", "p", "--size", "1"])
    if f.name != "size":
        assert getattr(plain, f.name) == f.plain
    given = parser.parse_args(["write", "p", "--size", "1", *flag_text(f, SAMPLE[f.name])])
    assert getattr(given, f.name) == SAMPLE[f.name]


@pytest.mark.parametrize("f", identity.FIELDS, ids=lambda f: f.name)
def test_dgen_verify_takes_each_field_as_an_override_of_the_manifest(f):
    assert getattr(cli.build_parser().parse_args(["verify", "p"]), f.name) is None


def test_the_manifest_record_round_trips_every_field():
    i = Identity(**SAMPLE)
    assert list(i.record()) == list(SAMPLE)
    assert json.loads(json.dumps(i.record())) == SAMPLE
    assert Identity.from_record(json.loads(json.dumps(i.record()))) == i


def test_the_manifest_leaves_out_what_it_always_left_out():
    plain = Identity(seed=1, size=4096)
    assert "dedup_window" not in plain.record() and "content" not in plain.record()
    assert Identity.from_record(plain.record()) == plain
    assert Identity(seed=1, size=4096, format_version=3).record()["dedup_window"] == 64


@pytest.mark.parametrize("f", identity.FIELDS, ids=lambda f: f.name)
def test_each_field_is_a_generator_keyword_with_the_tables_api_default(f):
    parameter = inspect.signature(Generator).parameters[f.name]
    default = f.default if f.name != "size" else parameter.empty
    assert parameter.default == default and type(parameter.default) is type(default)
    assert Generator(**{**SAMPLE, f.name: SAMPLE[f.name]}).identity == Identity(**SAMPLE)


def test_the_keywords_past_dedup_unit_default_to_the_tables_objects():
    # Generator's fast path tells "left at its default" by `is`.
    for f in dgen_py._generator._OPTIONS:
        assert inspect.signature(Generator).parameters[f.name].default is f.default, f.name


def test_a_field_left_at_its_api_default_gives_the_plain_identity():
    assert Generator(4096, seed=1).identity == Identity(seed=1, size=4096)
    assert Generator(4096, seed=1, dedup_skew="uniform").identity.dedup_skew == 0.0


def test_the_table_answers_bounds_and_accepted_values():
    assert identity.bounds("dedup_run") == (1, _core.MAX_DEDUP_RUN)
    assert identity.bounds("content") == ("flat", "binary", "text")
    assert identity.bounds("dedup_window") == (1, 4, 16, 64)
    with pytest.raises(KeyError, match="'dedup_twist' is not an identity field"):
        identity.bounds("dedup_twist")


TWIST = identity.Field(
    "dedup_twist", 0, (0, 7), lambda v: dgen_py._checks.integer("dedup_twist", v, 0, 7),
    identity.integer_text(0, 7), "T", "a field added for this test (default 0)", 0, 14,
    "twist {}", "--dedup-twist {}", recorded=lambda values: values["dedup_twist"] != 0)


def test_a_field_added_to_the_table_alone_reaches_options_reports_and_manifests(
        monkeypatch, capsys):
    fields = (*identity.FIELDS, TWIST)
    monkeypatch.setattr(identity, "FIELDS", fields)
    parser = cli.build_parser()
    args = parser.parse_args(["write", "p", "--size", "1", "--dedup-twist", "3"])
    assert cli_args.identity_options(args)["dedup_twist"] == 3
    assert parser.parse_args(["verify", "p"]).dedup_twist is None
    with pytest.raises(SystemExit):
        parser.parse_args(["write", "--help"])
    assert "--dedup-twist T" in capsys.readouterr().out
    assert parser.parse_args(["write", "p", "--size", "1"]).dedup_twist == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["write", "p", "--size", "1", "--dedup-twist", "8"])
    assert "--dedup-twist: '8' is not an integer in [0, 7]" in capsys.readouterr().err

    Twisted = identity.build(fields)
    i = Twisted(seed=1, size=4096, dedup_twist=3)
    assert i.record()["dedup_twist"] == 3 and Twisted.from_record(i.record()) == i
    assert "dedup_twist" not in Twisted(seed=1, size=4096).record()
    assert "twist 3" in report.identity_line(i.record())
    assert "--dedup-twist 3" in report.identity_flags(i.record())
    with pytest.raises(ValueError, match="dedup_twist must be in"):
        Twisted(seed=1, size=4096, dedup_twist=9)


def test_the_table_left_alone_by_the_test_above():
    assert "dedup_twist" not in [f.name for f in identity.FIELDS]
    assert "dedup_twist" not in [f.name for f in dataclasses.fields(Identity)]


def test_a_generators_identity_is_the_one_dgen_write_records(tmp_path, capsys):
    flags = ["--seed", "5", "--dedup-ratio", "2", "--dedup-for", "cdc:8KiB", "--content",
             "text", "--dedup-skew", "0.5", "--generation", "1", "--change-rate", "0.5"]
    assert cli.main(["write", str(tmp_path / "d.bin"), "--size", "1MiB", *flags]) == 0
    capsys.readouterr()
    recorded = json.loads((tmp_path / "d.bin.dgen.json").read_text())["identity"]
    gen = Generator(1 << 20, 2.0, seed=5, dedup_for="cdc:8KiB", content="text",
                    dedup_skew=0.5, generation=1, change_rate=0.5)
    assert gen.identity.record() == recorded
    assert Identity.from_record(recorded) == gen.identity


def test_a_drawn_seed_is_the_identitys_seed():
    gen = Generator(4096)
    assert gen.identity.seed == gen.seed
    assert Identity.of(size=4096).seed != Identity.of(size=4096).seed


def test_a_manifest_and_overrides_resolve_every_field_given_by_name(tmp_path):
    from dgen_py import manifest
    dgen_py.write_dataset(tmp_path / "d.bin", SAMPLE["size"], seed=1)
    assert manifest.resolve_dataset(tmp_path / "d.bin", **SAMPLE)["identity"] == \
        Identity(**SAMPLE).record() == manifest.make_identity(**SAMPLE)
    with pytest.raises(TypeError, match="'dedup_twist' is not an identity field"):
        manifest.resolve_dataset(tmp_path / "d.bin", dedup_twist=1)


def test_every_call_that_passes_its_identity_keywords_on_takes_every_field():
    # They pass identity.keywords_in(locals()) on: a field missing here would be its default.
    from dgen_py import datasets, rewrite, s3
    for call in (dgen_py.write_dataset, dgen_py.verify_file, rewrite.rewrite_changed,
                 datasets.write_training_dataset, s3.write_objects, s3.verify_objects):
        missing = set(identity.NAMES) - {"size"} - set(inspect.signature(call).parameters)
        assert not missing, (call.__name__, missing)
