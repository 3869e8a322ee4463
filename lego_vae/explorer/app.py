"""The face explorer's Gradio app: Generate, Morph, Steer and Reconstruct views over one checkpoint.

Offline by construction: analytics off, system fonts only (no web fonts), no server-side rendering
process, no share link unless server.share=true. Faces are sent at the checkpoint's own size as PNG
and enlarged by the browser (pixelated), so what the page shows is exactly what the model decoded.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import gradio as gr
import torch

from lego_vae.config.commands import ExploreConfig
from lego_vae.errors import UserError
from lego_vae.explorer.session import Explorer, Face, read_upload
from lego_vae.pictures import grid_tensor, save_gif, to_pil

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
# Tiny faces fill their boxes, enlarged without blur.
CSS = ".face img { width: 100%; height: 100%; object-fit: contain; } img { image-rendering: pixelated; }"
FACE_PX = 256  # display height of one face


def picture(images: torch.Tensor, nrow: int):
    """A PIL picture of one face (3, S, S) or a grid of faces (N, 3, S, S)."""
    return to_pil(images if images.dim() == 3 else grid_tensor(images, nrow))


def face_image(value, label: str, height: int, **kw):
    """An image box that shows faces as lossless PNGs at their own size, enlarged to fill it."""
    return gr.Image(value, type="pil", format="png", label=label, height=height, elem_classes="face",
                    buttons=["download"], **kw)


def message(err: Exception) -> str:
    """What the page says about a failure."""
    return f"**Could not use that:** {err}"


def build_app(explorer: Explorer, settings: ExploreConfig):
    """The gr.Blocks app over an Explorer, configured by the explore config. Its morph GIFs go in
    `app.gif_dir`, of the tempfile.TemporaryDirectory `app.gif_folder`: removed by cleanup() (serve.explore
    calls it when the explorer ends), else when the app is garbage-collected or the process exits."""
    grid, steps, span = settings.grid, settings.morph.steps, settings.steer.range
    dims = explorer.steer_dims(settings.steer.dims)
    gif_folder = tempfile.TemporaryDirectory(prefix="lego-vae-explore-")
    gif_dir = Path(gif_folder.name)
    gallery = [to_pil(x) for x in explorer.gallery(settings.gallery)]
    picker = {"columns": 12, "height": FACE_PX // 2 + 40, "allow_preview": False, "scale": 3}  # the galleries
    offered = "test faces" if len(explorer.faces) == len(explorer.test) else "test and validation faces"
    has_gmm = explorer.prior is not None

    # ---- handlers: each returns what its outputs show; a UserError becomes a message in the page ----
    def generate(seed, temperature, prior):
        try:
            faces = explorer.sample(grid * grid, int(seed or 0), float(temperature), prior)
        except UserError as err:
            return None, message(err)
        return picture(faces, grid), ""

    def morph_views(a: Face | None, b: Face | None, t, mode, note=""):
        if a is None or b is None:
            return None, None, None, note or "Choose face A and face B."
        strip = explorer.morph_strip(a, b, steps, mode)
        gif = save_gif(strip, gif_dir / f"morph-{uuid.uuid4().hex[:8]}.gif", scale=max(1, 128 // explorer.size))
        note = note or f"{a.label} → {b.label} ({mode})"
        return morph_frame(a, b, t, mode), picture(strip, steps), str(gif), note

    def set_face(which, face, a, b, t, mode):
        a, b = (face, b) if which == "A" else (a, face)
        return (a, b, to_pil(a.image) if a else None, to_pil(b.image) if b else None, *morph_views(a, b, t, mode))

    def morph_upload(which):
        def handler(path, a, b, t, mode):
            try:
                face = explorer.upload_face(path) if path else None
            except UserError as err:
                return (a, b, gr.skip(), gr.skip(), *morph_views(a, b, t, mode, message(err)))
            return set_face(which, face, a, b, t, mode) if face else (a, b, *[gr.skip()] * 6)
        return handler

    def morph_pick(index, which, a, b, t, mode):
        return set_face(which, explorer.test_face(int(index)), a, b, t, mode)

    def morph_select(target, a, b, t, mode, evt: gr.SelectData):
        return ("B" if target == "A" else "A", *morph_pick(evt.index, target, a, b, t, mode))

    def morph_frame(a, b, t, mode):
        return None if a is None or b is None else picture(explorer.decode(explorer.morph_latent(a, b, t, mode)), 1)

    def steer(face, *offsets):
        return None if face is None else picture(explorer.steer(face, dims, list(offsets)), 1)

    def steer_set(face, offsets):
        return face, to_pil(face.image), steer(face, *offsets), f"Steering {face.label}"

    def steer_upload(path, face, *offsets):
        try:
            new = explorer.upload_face(path) if path else None
        except UserError as err:
            return face, gr.skip(), gr.skip(), message(err)
        return steer_set(new, offsets) if new else (face, gr.skip(), gr.skip(), "")

    def steer_pick(index, *offsets):
        return steer_set(explorer.test_face(int(index)), offsets)

    def steer_select(*offsets, evt: gr.SelectData):
        return steer_pick(evt.index, *offsets)

    def reconstruct(paths):
        paths = [p for p in (paths or []) if p]
        notes, names, images = [], [], []
        for path in paths[: settings.max_files]:
            try:
                images.append(read_upload(path, explorer.size, explorer.max_pixels))
                names.append(Path(path).name)
            except UserError as err:
                notes.append(f"- {err}")
        if len(paths) > settings.max_files:
            notes.append(f"- only the first {settings.max_files} files are used (max_files)")
        if not images:
            return [], "\n".join(["**Nothing to reconstruct.**", *notes]) if notes else "Upload images."
        recon, sse = explorer.reconstruct(torch.stack(images))
        pixels = images[0].numel()
        items = [(picture(torch.stack([x, r.cpu()]), 2), f"{n}: error {e:.2f} (MSE {e / pixels:.5f})")
                 for n, x, r, e in zip(names, images, recon, sse.tolist())]
        head = (f"Error: the sum of squared pixel errors (pixels in [0, 1], {pixels:,} values per image), "
                "the training loss's recon term; MSE is that over the number of values.")
        return items, "\n".join([head, *(["**Skipped:**", *notes] if notes else [])])

    # ---- layout ------------------------------------------------------------------------------------
    with gr.Blocks(title="lego-vae face explorer", analytics_enabled=False) as app:
        gr.Markdown(f"## lego-vae face explorer\n`{explorer.label}`: {explorer.size} px faces, "
                    f"latent {explorer.latent}. Uploads: any `.png .jpg .jpeg .bmp .webp` of at most "
                    f"{explorer.max_pixels:,} pixels, centre-cropped and resized to {explorer.size} px.")
        with gr.Tab("Generate"):
            with gr.Row():
                seed = gr.Number(value=settings.seed, precision=0, minimum=0, label="seed")
                temperature = gr.Slider(0.1, 2.0, value=settings.temperature, step=0.05, label="temperature")
                prior = gr.Radio([("N(0, I)", "normal"), ("fitted GMM", "gmm")], value="normal", label="prior",
                                 interactive=has_gmm,
                                 info=None if has_gmm else "this checkpoint holds no fitted GMM prior")
                new = gr.Button("New faces", variant="primary")
            first = explorer.sample(grid * grid, settings.seed, settings.temperature)
            faces = face_image(picture(first, grid), "faces", 2 * FACE_PX, elem_id="generate-faces")
            gen_note = gr.Markdown()
            args = [seed, temperature, prior]
            gr.on([seed.submit, temperature.release, prior.input], generate, args, [faces, gen_note],
                  api_name="generate")
            new.click(lambda s: int(s or 0) + 1, seed, seed, api_visibility="private").then(
                generate, args, [faces, gen_note], api_visibility="private")

        with gr.Tab("Morph"):
            a0, b0 = (explorer.test_face(i) for i in (0, 1)) if len(explorer.faces) else (None, None)
            face_a, face_b = gr.State(a0), gr.State(b0)
            frame0, strip0, gif0, note0 = morph_views(a0, b0, 0.5, settings.morph.mode)
            with gr.Row():
                show_a = face_image(to_pil(a0.image) if a0 else None, "A", FACE_PX // 2)
                frame = face_image(frame0, "face at t", FACE_PX, elem_id="morph-frame", scale=2)
                show_b = face_image(to_pil(b0.image) if b0 else None, "B", FACE_PX // 2)
            with gr.Row():
                t = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="A → B", elem_id="morph-t", scale=4)
                mode = gr.Radio(["linear", "slerp"], value=settings.morph.mode, label="path", scale=1)
            with gr.Row():
                strip = face_image(strip0, "the whole path", FACE_PX // 2, scale=3)
                gif = gr.File(gif0, label="GIF (there and back)", scale=1)
            morph_note = gr.Markdown(note0)
            with gr.Row():
                pick = gr.Gallery(gallery, label=f"{offered}: click one", **picker)
                with gr.Column(scale=1):
                    target = gr.Radio(["A", "B"], value="A", label="the face you click becomes")
                    up_a = gr.File(label="or upload face A", type="filepath")
                    up_b = gr.File(label="or upload face B", type="filepath")
            views = [frame, strip, gif, morph_note]
            state_in = [face_a, face_b, t, mode]
            state_out = [face_a, face_b, show_a, show_b, *views]
            up_a.upload(morph_upload("A"), [up_a, *state_in], state_out, api_name="morph_upload_a")
            up_b.upload(morph_upload("B"), [up_b, *state_in], state_out, api_name="morph_upload_b")
            pick.select(morph_select, [target, *state_in], [target, *state_out], api_visibility="private")
            which = gr.Radio(["A", "B"], value="A", visible=False)
            index = gr.Number(0, precision=0, visible=False)
            index.change(morph_pick, [index, which, *state_in], state_out, api_name="morph_pick")
            t.change(morph_frame, state_in, frame, api_name="morph_frame", trigger_mode="always_last",
                     show_progress="hidden")
            mode.change(morph_views, state_in, views, api_name="morph_path")

        with gr.Tab("Steer"):
            steered = explorer.test_face(0) if len(explorer.faces) else None
            face_s = gr.State(steered)
            with gr.Row():
                with gr.Column(scale=2):
                    sliders = [gr.Slider(-span, span, value=0.0, step=0.05,
                                         label=f"z[{d}] (mean KL {explorer.kl[d]:.2f})", elem_classes="steer-slider")
                               for d in dims]
                show_s = face_image(to_pil(steered.image) if steered else None, "the face", FACE_PX // 2)
                out_s = face_image(steer(steered, *[0.0] * len(dims)), "steered", FACE_PX, elem_id="steer-out")
            with gr.Row():
                pick_s = gr.Gallery(gallery, label=f"{offered}: click one to steer", **picker)
                up_s = gr.File(label="or upload a face", type="filepath", scale=1)
            steer_note = gr.Markdown("Each slider adds to the face's posterior mean in one of its most used "
                                     "latent dimensions (by mean KL over the test faces); all at 0 is the face's "
                                     "reconstruction.")
            gr.on([s.change for s in sliders], steer, [face_s, *sliders], out_s, api_name="steer",
                  trigger_mode="always_last", show_progress="hidden")
            up_s.upload(steer_upload, [up_s, face_s, *sliders], [face_s, show_s, out_s, steer_note],
                        api_name="steer_upload")
            pick_s.select(steer_select, sliders, [face_s, show_s, out_s, steer_note], api_visibility="private")
            index_s = gr.Number(0, precision=0, visible=False)
            index_s.change(steer_pick, [index_s, *sliders], [face_s, show_s, out_s, steer_note],
                           api_name="steer_pick")

        with gr.Tab("Reconstruct"):
            ups = gr.File(label="photos", file_count="multiple", type="filepath")
            pairs = gr.Gallery(label="each photo (left) and its reconstruction (right)", columns=4,
                               height=2 * FACE_PX, format="png")
            rec_note = gr.Markdown()
            ups.upload(reconstruct, ups, [pairs, rec_note], api_name="reconstruct")
    app.gif_folder, app.gif_dir = gif_folder, gif_dir
    return app


def launch(app, settings: ExploreConfig, block: bool = True):
    """Serve the app on server.host:server.port (127.0.0.1 by default), offline, sharing only when asked."""
    server = settings.server
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    return app.launch(server_name=server.host, server_port=server.port, share=bool(server.share),
                      ssr_mode=False, theme=theme, css=CSS, max_file_size=f"{settings.max_upload_mb}mb",
                      allowed_paths=[str(app.gif_dir)], prevent_thread_lock=not block, show_error=True,
                      quiet=True)
