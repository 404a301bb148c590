"""`spikeforge evaluate MODEL_FILE --data NAME`: models from export / import-nir."""

import json

from export_helpers import cli, untrained_digits_run


def test_imported_nir_model_evaluates_like_its_run(tmp_path):
    run = untrained_digits_run(tmp_path)
    nir_file, model_file = tmp_path / "digits.nir", tmp_path / "m.pt"
    cli("export", str(run), "--to", "nir", "--out", str(nir_file))
    cli("import-nir", str(nir_file), "--out", str(model_file))
    _, from_run, _ = cli("evaluate", str(run), "--json")
    _, from_file, _ = cli("evaluate", str(model_file), "--data", "digits", "--json")
    expected = json.loads(from_run.strip().splitlines()[-1])["test_accuracy"]
    result = json.loads(from_file.strip().splitlines()[-1])
    assert result["test_accuracy"] == expected
    assert result["n_test"] > 100 and result["dt"] == 1.0


def test_model_file_without_data_or_with_the_wrong_data_is_one_line(tmp_path):
    run = untrained_digits_run(tmp_path)
    nir_file, model_file = tmp_path / "digits.nir", tmp_path / "m.pt"
    cli("export", str(run), "--to", "nir", "--out", str(nir_file))
    cli("import-nir", str(nir_file), "--out", str(model_file))
    code, _, err = cli("evaluate", str(model_file), check=False)
    assert code == 2 and "names no dataset; add --data NAME" in err
    code, _, err = cli("evaluate", str(model_file), "--data", "yinyang", check=False)
    assert code == 2 and "takes 64 inputs but --data yinyang has" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("evaluate", str(run), "--data", "digits", check=False)
    assert code == 2 and "a run folder evaluates on its own data" in err


def test_energy_of_a_model_file_counts_the_same_operations_as_its_run(tmp_path):
    run = untrained_digits_run(tmp_path)
    model_file = tmp_path / "m.pt"
    cli("export", str(run), "--to", "nir", "--out", str(tmp_path / "digits.nir"))
    cli("import-nir", str(tmp_path / "digits.nir"), "--out", str(model_file))
    args = ("--samples", "4", "--repeats", "1", "--json")
    _, from_run, _ = cli("energy", str(run), *args)
    _, from_file, _ = cli("energy", str(model_file), "--data", "digits", *args)
    a, b = (json.loads(text.strip().splitlines()[-1]) for text in (from_run, from_file))
    assert a["counts"] == b["counts"]
    assert (tmp_path / "m-energy" / "energy.json").is_file()
    code, _, err = cli("energy", str(model_file), check=False)
    assert code == 2 and "add --data NAME" in err
