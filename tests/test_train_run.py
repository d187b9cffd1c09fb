"""The run folder every training stage prepares: made with its config.yaml, or one clear error."""

import pytest

from alignkit.config import SFTConfig, load_config
from alignkit.errors import AlignkitError
from alignkit.train.run import prepare_run_dir


def test_a_new_output_dir_is_made_with_the_resolved_config(tmp_path):
    run_dir = prepare_run_dir(load_config(SFTConfig, None, [f"output_dir={tmp_path / 'a' / 'run'}"]), resume=False)
    assert run_dir == tmp_path / "a" / "run" and (run_dir / "config.yaml").is_file()


@pytest.mark.parametrize("below", ["", "run"])
def test_an_output_dir_that_is_or_lies_under_a_file_is_one_clear_error(tmp_path, below):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    output_dir = taken / below if below else taken
    config = load_config(SFTConfig, None, [f"output_dir={output_dir}"])
    with pytest.raises(AlignkitError) as error:
        prepare_run_dir(config, resume=False)
    assert str(error.value) == (f"output_dir {output_dir}: {taken} is a file, not a folder "
                                "(expected a folder for the run, or a path where one can be made)")
    assert taken.read_text() == "not a folder"
