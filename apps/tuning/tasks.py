from celery import shared_task


@shared_task(name="tuning.keep_studies", ignore_result=True)
def keep_studies() -> dict:
    """Beat: settle finished trials, launch missing ones and end spent studies (see studies_keep)."""
    from .services import studies_keep

    return studies_keep()
