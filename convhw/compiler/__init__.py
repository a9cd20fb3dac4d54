"""The compiler: a ConvSpec and its tensors -> engine jobs (register programs and transfers),
and the NumPy model that runs those jobs exactly as the engine does."""

from .job import Axis, Frame, Job, Pass, execute, frame, passes
from .program import Step, compile_layer, input_words, output_region, weight_words

__all__ = ["Axis", "Frame", "Job", "Pass", "Step", "compile_layer", "execute", "frame",
           "input_words", "output_region", "passes", "run_model", "weight_words"]


def run_model(spec, x, weight, bias, config, skip_borders=True, input_zero=0):
    """Run a layer through the compiler and the NumPy job model: the engine's result, computed
    the engine's way (tiles, windows, address streams, wrap-around accumulators, bias on read;
    with ``config.activation_offset`` the operands ``x - input_zero``). Returns the
    batched-like-input output as int64 and the steps."""
    import numpy as np
    x, batched = spec.check_input(x)
    x, weight, bias = config.check_operands(spec, x, weight, bias, input_zero)
    steps = compile_layer(spec, x.shape, config, skip_borders=skip_borders,
                          input_zero=input_zero)
    out = np.zeros(spec.output_shape(x.shape), dtype=np.int64)
    out3 = out.reshape(out.shape[0], out.shape[1], *(1,) * (5 - out.ndim), *out.shape[2:])
    acc = None
    for step in steps:
        job = step.job
        # The job as its registers hold it (in its own frame when the layer is longer than
        # the coordinates): what the engine runs.
        acc = execute(frame(job).job, input_words(step, x, config.rows),
                      weight_words(step, spec, weight, config),
                      acc=acc if job.accumulate else None)
        if step.read_out:
            n, channels, spatial, shape = output_region(step)
            values = acc[:, :step.oc_count].reshape(*shape, step.oc_count)
            values = np.moveaxis(values, -1, 0)
            if bias is not None:
                values = values + bias[channels].reshape(-1, 1, 1, 1)
            out3[(n, channels, *spatial)] = values
    return (out if batched else out[0]), steps
