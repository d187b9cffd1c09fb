"""The simulator page (``/simulator``): rank three responses, see a reward model and a DPO step react.

``GET /simulator?prompt=...&sample=N`` fills the three responses with replies sampled from the
simulator's model (seed N); without ``sample`` the page shows a fixed example.

The model comes from ``app.state.simulator_model`` (``alignkit annotate serve --simulator-model``);
it is loaded on the first submission and kept. Any signed-in user may use it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from alignkit.annotate.dependencies import CsrfUser, CurrentUser, Form, render
from alignkit.errors import AlignkitError

router = APIRouter()
EXAMPLE = {
    "prompt": "How do I keep basil alive indoors?",
    "responses": [
        "Put it on a sunny windowsill, water when the top of the soil is dry, and pinch off flower buds.",
        "Basil is a plant.",
        "Water it every hour and keep it in a dark cupboard so the leaves stay soft.",
    ],
}


def simulator(request: Request):
    """The app's Simulator, created on first use."""
    from alignkit.annotate.simulator import Simulator

    state = request.app.state
    if getattr(state, "simulator", None) is None:
        state.simulator = Simulator(state.simulator_model)
    return state.simulator


@router.get("/simulator")
def simulator_page(request: Request, user: CurrentUser, prompt: str = EXAMPLE["prompt"], sample: int | None = None):
    responses = EXAMPLE["responses"] if sample is None else simulator(request).sample(prompt, 3, seed=sample)
    return render(request, "simulator.html", user=user, prompt=prompt, responses=responses, ranks=[1, 2, 3],
                  result=None, next_sample=(sample or 0) + 1)


@router.post("/simulator")
def simulate(request: Request, user: CsrfUser, form: Form):
    prompt = str(form.get("prompt", ""))
    responses = [str(form.get(f"response_{i}", "")) for i in range(3)]
    ranks = [int(r) if str(r).isdigit() else 0 for r in (form.get(f"rank_{i}") for i in range(3))]
    result, error = None, ""
    try:
        if not all(1 <= r <= 3 for r in ranks):
            raise AlignkitError("every response needs a rank from 1 to 3")
        result = simulator(request).update(prompt, responses, ranks)
    except AlignkitError as exc:
        error = str(exc)
    return render(request, "simulator.html", status_code=400 if error else 200, user=user, prompt=prompt,
                  responses=responses, ranks=ranks, result=result, error=error, next_sample=1)
