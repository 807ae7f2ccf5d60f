"""Instruments: networks that *measure* generated talking faces (CAPP for audio-pose alignment, and more in later
chapters). An instrument is trained separately and never shares weights with the generator it judges, so the
generator cannot learn to please its own ruler.
"""
from vasa_lite.instruments.capp import CAPP, PAPER_SHIFT_TABLE, capp_score, capp_shift_table, load_capp

__all__ = ["CAPP", "PAPER_SHIFT_TABLE", "capp_score", "capp_shift_table", "load_capp"]
