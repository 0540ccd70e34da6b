"""qr_metrics.params: the one parameter check every parameter object uses."""

import numpy as np
import pytest

from qr_metrics.code_sandbox import SandboxLimits
from qr_metrics.params import MeasureParams, ParameterError, check, is_int
from qr_metrics.stats import BootstrapConfig


def test_check_raises_parameter_error_naming_owner_field_value_and_range():
    check("Owner", True, "x", -5, ">= 0")
    with pytest.raises(ParameterError) as error:
        check("Owner", False, "x", -5, ">= 0")
    assert str(error.value) == "Owner.x=-5 is invalid: must be >= 0"
    assert (error.value.field, error.value.value, error.value.allowed) == ("x", -5, ">= 0")
    assert error.value.problem == "-5 is invalid: must be >= 0"
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(("value", "expected"), [
    (0, True), (-3, True), (2**70, True), (np.int64(4), True), (np.uint8(1), True),
    (True, False), (np.bool_(True), False), (1.0, False), (np.float64(2.0), False), ("1", False), (None, False),
])
def test_is_int(value, expected):
    assert is_int(value) is expected


def test_every_parameter_object_refuses_with_the_same_message_shape():
    with pytest.raises(ParameterError, match=r"^MeasureParams\.loop_min_copies=2 is invalid: must be >= 3$"):
        MeasureParams(loop_min_copies=2)
    with pytest.raises(ParameterError, match=r"^BootstrapConfig\.seed=-1 is invalid: must be an integer >= 0$"):
        BootstrapConfig(seed=-1)
    with pytest.raises(ParameterError, match=r"^SandboxLimits\.memory_mb=8 is invalid: must be an integer in "):
        SandboxLimits(memory_mb=8)


def test_sandbox_limits_take_numpy_integers_as_ints():
    limits = SandboxLimits(memory_mb=np.int64(256), cpu_s=np.int32(2))
    assert (limits.memory_mb, limits.cpu_s) == (256, 2)
    assert type(limits.memory_mb) is int and type(limits.cpu_s) is int
