from hrl_internal.utils.progress import Progress, format_duration


def test_progress_prints_rate_eta_and_metrics_and_always_the_last_line():
    lines = []
    progress = Progress("phase", total=100, unit="steps", every_s=3600, write=lines.append,
                        also_per_s={"tokens": 10})
    progress.update(10, loss=0.5)  # first update prints
    progress.update(50, loss=0.25)  # throttled
    progress.update(100, loss=0.125)  # finished: always printed
    assert len(lines) == 2
    assert lines[0].startswith("[phase] 10/100 steps (10.0%)") and "loss 0.5" in lines[0]
    assert "steps/s" in lines[1] and "ETA 0:00:00" in lines[1] and "loss 0.125" in lines[1]
    assert "tokens/s" in lines[0]


def test_format_duration():
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-1) == "0:00:00"
