import pytest

from experiments import action_codes


@pytest.mark.parametrize("args,flag", [(["--widths=16,x"], "--widths"), (["--seeds=0"], "--seeds"),
                                       (["--updates=-1"], "--updates"),
                                       (["--widths=0"], "--widths"),
                                       (["--blocks=rglru,mlp"], "--blocks"),
                                       (["--heads=softmax"], "--heads")])
def test_bad_flags_stop_before_compute_naming_the_flag(args, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        action_codes.main(args)
    assert exit_.value.code == 2 and flag in capsys.readouterr().err
