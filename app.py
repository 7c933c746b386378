"""The demo: `python app.py [--index DIR_OR_REPO] [--model FILE_OR_REPO] [--device cuda]`.

Also the Hugging Face Space's app_file. Serves the embedded default (assets/index and
assets/model.safetensors) unless told otherwise. The UI lives in app/.
"""
import sys

from app.launch import main

if __name__ == "__main__":
    sys.exit(main())
