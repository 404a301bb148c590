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
