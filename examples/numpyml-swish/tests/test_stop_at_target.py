"""The stop_at_target callback, checked with numpyml's test kit."""

from numpyml_kit import testing

from numpyml_swish import StopAtTarget


def test_callback_contract():
    assert testing.check_callback(StopAtTarget)["hooks"] == ["numpyml_on_epoch_end"]


def test_stops_when_the_target_is_reached(numpyml_tiny_experiment):
    summary, _ = numpyml_tiny_experiment("callback", StopAtTarget, {"monitor": "train_loss", "target": 10.0,
                                                                    "mode": "min"}, epochs=4)
    assert summary["epochs"] == 1 and "train_loss reached" in summary["stop_reason"]


def test_trains_to_the_end_otherwise(numpyml_tiny_experiment):
    summary, _ = numpyml_tiny_experiment("callback", StopAtTarget, {"target": 2.0}, epochs=3)
    assert summary["epochs"] == 3 and "stop_reason" not in summary
