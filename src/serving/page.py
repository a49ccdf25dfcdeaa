"""The demo page (Gradio): a prompt tab, a prompt-walk tab and a variations tab over `DemoActions`.

Element ids (`#prompt`, `#seed`, `#count`, `#generate`, `#grid`, `#status`, ...) are what the browser test
drives; keep them stable.
"""

from __future__ import annotations

from typing import Any

from src.serving.actions import DemoActions

FIRST_PROMPT = "a handwritten digit three"
# Image buttons: no "share", which would upload to a public hub.
SAVE = ["download", "fullscreen"]


def describe(actions: DemoActions, source: str) -> str:
    """The Markdown line above the tabs: which model is served, or why none is."""
    if actions.sampler is None:
        return f"**error: the model did not load:** {actions.load_error}"
    run = actions.sampler.run_config
    ds = run.get("dataset", {})
    names = (ds.get("captions") or {}).get("class_names") or []
    known = f" It knows: {', '.join(names)}." if names else ""
    side, step = actions.sampler.image_size, actions.sampler.gan_step
    return (
        f"Model `{source}`: {ds.get('name', '?')}, {side}x{side}, {step} G steps.{known} "
        "Any phrasing works; the seed fixes the noise."
    )


def build_page(actions: DemoActions, source: str) -> Any:
    """A gr.Blocks app wired to `actions`; the first grid is drawn when the page opens."""
    import gradio as gr

    lim = actions.limits
    with gr.Blocks(title="PixelGAN", analytics_enabled=False) as page:
        gr.Markdown(f"## PixelGAN: text to image\n{describe(actions, source)}", elem_id="model")
        with gr.Tab("Prompt"):
            with gr.Row():
                prompt = gr.Textbox(value=FIRST_PROMPT, label="Prompt", elem_id="prompt", scale=4)
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed", minimum=0, scale=1)
                count = gr.Slider(
                    1, lim.max_images, value=16, step=1, label="Images", elem_id="count", scale=2
                )
            go = gr.Button("Generate", variant="primary", elem_id="generate")
            grid = gr.Image(label="Samples", format="png", interactive=False, buttons=SAVE, elem_id="grid")
            status = gr.Markdown(elem_id="status")
        with gr.Tab("Interpolate"):
            with gr.Row():
                first = gr.Textbox(value="a handwritten digit one", label="From", elem_id="walk_a")
                second = gr.Textbox(value="a handwritten digit seven", label="To", elem_id="walk_b")
                steps = gr.Slider(2, lim.max_steps, value=8, step=1, label="Steps", elem_id="walk_steps")
                walk_seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="walk_seed")
            walk_go = gr.Button("Interpolate", variant="primary", elem_id="walk_go")
            with gr.Row():
                walk = gr.Image(
                    label="Rows: 4 noises; columns: from → to",
                    format="png",
                    buttons=SAVE,
                    elem_id="walk_grid",
                )
                gif = gr.Image(label="Animated", type="filepath", buttons=SAVE, elem_id="walk_gif")
            walk_status = gr.Markdown(elem_id="walk_status")
        with gr.Tab("Variations"):
            with gr.Row():
                upload = gr.Image(label="An image", type="filepath", sources=["upload"], elem_id="like_in")
                with gr.Column():
                    like_prompt = gr.Textbox(
                        value=FIRST_PROMPT, label="Prompt it was drawn from", elem_id="like_p"
                    )
                    like_count = gr.Slider(1, 16, value=8, step=1, label="Variations", elem_id="like_n")
                    like_seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, elem_id="like_seed")
                    like_go = gr.Button("Make variations", variant="primary", elem_id="like_go")
            row = gr.Image(
                label="Input, reconstruction, variations", format="png", buttons=SAVE, elem_id="like_out"
            )
            like_status = gr.Markdown(elem_id="like_status")

        draw = (actions.prompt_grid, [prompt, seed, count], [grid, status])
        go.click(*draw, api_name="generate")
        # Enter in the prompt box and opening the page draw too; one documented endpoint is enough.
        prompt.submit(*draw, api_visibility="undocumented")
        page.load(*draw, api_visibility="undocumented")
        walk_go.click(
            actions.interpolation,
            [first, second, steps, walk_seed],
            [walk, gif, walk_status],
            api_name="interpolate",
        )
        like_go.click(
            actions.variations,
            [upload, like_prompt, like_count, like_seed],
            [row, like_status],
            api_name="variations",
        )
    return page


def theme() -> Any:
    """Gradio's default look with the system's fonts: the stock theme would fetch fonts from the web."""
    import gradio as gr

    local = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=local, font_mono=["ui-monospace", "monospace"])
