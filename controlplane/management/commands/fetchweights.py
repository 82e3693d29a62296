"""Download the original's ResNet50 ImageNet weights into models/ (for operators who are online)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from torch.hub import download_url_to_file

from classifier.weights import RESNET50_FILES, RESNET50_URL


class Command(BaseCommand):
    help = "Download resnet50-19c8e357.pth into MODELS_DIR and check its sha256 prefix (as torchvision does)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=RESNET50_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        models_dir = settings.SIGHTLINE.models_dir
        target = models_dir / RESNET50_FILES[0]
        if target.exists():
            self.stdout.write(f"{target} is already there")
            return
        models_dir.mkdir(parents=True, exist_ok=True)
        # torchvision names its files <name>-<first 8 hex of sha256>.pth; download_url_to_file checks that prefix.
        hash_prefix = RESNET50_FILES[0].rsplit("-", 1)[1].split(".")[0]
        try:
            download_url_to_file(options["url"], str(target), hash_prefix=hash_prefix, progress=True)
        except RuntimeError as exc:
            raise CommandError(f"downloaded file failed the sha256 check: {exc}") from None
        except OSError as exc:
            raise CommandError(
                f"could not download {options['url']}: {exc} (no network? copy the file into {models_dir})"
            ) from None
        self.stdout.write(self.style.SUCCESS(f"saved {target}; restart the workers to use MODEL=resnet50"))
