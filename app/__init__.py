"""The Gradio demo (UI only; all model work goes through `engine`)."""
