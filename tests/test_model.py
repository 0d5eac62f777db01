import pytest

torch = pytest.importorskip("torch")

from lipparse_rt.model import LipNet, LipNetConfig, Preprocess  # noqa: E402


def test_output_shape_is_input_size_with_20_classes():
    net = LipNet().eval()
    with torch.no_grad():
        y = net(torch.randn(1, 3, 96, 64))
    assert y.shape == (1, 20, 96, 64)


def test_parameter_count_within_10_percent_of_paper():
    n = LipNet().num_params()
    assert abs(n - 3.97e6) / 3.97e6 < 0.10, n


def test_input_not_divisible_by_16_is_rejected():
    with pytest.raises(ValueError, match="divisible by 16"):
        LipNet()(torch.randn(1, 3, 100, 64))


def test_six_stages_required():
    with pytest.raises(ValueError):
        LipNetConfig(widths=(16, 32))


def test_preprocess_flips_bgr_to_rgb_and_normalises():
    bgr = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    bgr[..., 2] = 255  # pure red in BGR
    x = Preprocess()(bgr)
    assert x.shape == (1, 3, 2, 2)
    # red channel (RGB index 0) is high, others at -mean/std
    assert x[0, 0].min() > 2.0 and x[0, 1].max() < -1.9 and x[0, 2].max() < -1.7
