"""Bidirectional LSTM with late fusion for ECG identification, after Kim & Pyun 2020.

B.-H. Kim, J.-Y. Pyun, "ECG Identification For Personal Authentication Using LSTM-Based Deep
Recurrent Neural Networks", Sensors 20(11):3069, 2020. doi:10.3390/s20113069

The paper identifies a person from a single heartbeat: the ECG is passed through a derivative
filter (emphasising the QRS complex) and moving-average smoothing, min-max normalised, cut
into beats on the R peaks, and classified by three stacked bidirectional LSTM layers whose
output at every time step is a prediction; the step predictions are combined by a weighted
average ("late fusion") into the decision. What the paper reports (its abstract): 99.8 %
accuracy on the MIT-BIH Arrhythmia Database (47 subjects) and 100 % on the MIT-BIH Normal
Sinus Rhythm Database (18 subjects), from single beats.

Here: the preprocessing is the beat datamodules' options (``derivative``, ``smoothing_seconds``,
``normalize: minmax``; see ``conf/experiment/kim2020_*.yaml``), the task is the
``identification`` label scheme with the ``time`` split (each subject's earlier beats train,
later beats test; not random beats, which put neighbours on both sides: ``data.split=
intra_patient`` runs them only to measure that leak, below).

What we changed and why:

* Fusion weights: the paper's full text was not available to us offline, so its exact weighting
  could not be checked. ``fusion="learned"`` (default) learns one weight per time step
  (softmax-normalised, starting uniform); ``fusion="mean"`` is the fixed equal-weight average.
* The fused output is the log of the weighted average of the step probabilities. The standard
  classification task trains it with cross-entropy (softmax of a log-probability vector is that
  vector), so late fusion needs no LightningModule of its own: the loss is the paper's
  decision, and ``step_log_probs`` exposes the per-step predictions.
* Layer width (64 units per direction), dropout and the beat window (0.25 s before, 0.45 s after
  the R peak, at 128 Hz for all three databases so one network fits them) are our choices.
* Input shaping: the presets feed the beat as frames of ``frame_length=5`` samples (39 ms; 18
  steps per beat) and train with Adam at 3e-3. Sample by sample (90 steps) the stacked BiLSTM
  stayed at chance on ECG-ID for 9 epochs (validation accuracy 6-11 %, loss near ln 90); with
  frames of 5 and lr 3e-3 (batch 32) it reached 41 % validation accuracy after 6 epochs and
  was still rising. ``frame_length=1`` restores the sample-by-sample reading.
* Gradient clipping on ECG-ID (``trainer.gradient_clip_val=1.0``, patience 10): measured
  2026-12-02 over seeds 1-3 without it, the time-split preset gave test accuracy 0.70, 0.32 and
  0.07: seed 3 never left its first plateau (one class for every beat, validation accuracy
  6.8 %) and early stopping ended it after 6 epochs; seed 2 sat there 3 epochs and was still
  rising at epoch 30. With clipping seed 3 left the plateau at epoch 6 and reached 68.7 %
  validation accuracy (chosen on validation only). A recipe problem, not a budget one.

MIT-BIH at the full budget (``experiment=kim2020_mitdb``, 2026-12-02, 30 epochs, 52 s each on
2 CPU cores): test accuracy 92.7 % against the paper's 99.8 %. Not a budget problem: validation
accuracy sat at 95-96 % from epoch 19 (best epoch 27) with training accuracy at 98.7 %. The
likely difference is the protocol: our time split tests each record's last 20 % of beats
(about its last 6 minutes), which the net never saw and in which rate and morphology have
drifted; a random beat split, which we could not confirm the paper used (its full text was not
available offline), puts each test beat's neighbours in training. Over 10 consecutive beats
the same model identifies 95.7 %, with a verification EER of 1.0 % (1.8 % from one beat).

That protocol tested (2026-12-03, seed 42, ``python -m ecg_lightning.run experiment=kim2020_mitdb
data.split=intra_patient``: random beats, stratified by subject, 70 / 10 / 20 %, logged as
``intra_patient``; 30 epochs of 72 s, best the 28th, 37 min 31 s on 2 CPU cores): **98.2 %** of
single beats identified (99.9 % of 5-beat and 100 % of 10-beat blocks), EER 0.46 %. The same
net, recipe and budget that reach 92.7 % on the time split: the protocol accounts for 5.5 of
the 7.1 points to the paper's 99.8 %; the rest is at most the budget (its best epoch was
the 28th of 30, still rising) or details we could not read. Nothing chose the protocol on test
figures; the time split stays the preset, as the honest one.

SVDB, a third database (``experiment=kim2020_svdb``, 2026-12-02, seed 42, full preset: early
stopping at epoch 20 of 30, best the 15th, 52 s an epoch): 78 subjects, 92.9 % of single beats
and 97.7 % of ten-beat blocks identified, EER 1.1 % (one beat) and 0.36 % (ten beats). The
paper does not use SVDB; like MIT-BIH it holds one 30-minute session per person, so this is a
within-session figure.

Biometrics beyond the paper (``ecg_lightning/biometrics.py``): every identification run also
logs identification over k consecutive beats of one record (mean of the probabilities) and
verification error rates (EER, TAR at FAR 1 % and 0.1 %) with the class probabilities as
scores. ``experiment=kim2020_ecgiddb_cross_session`` trains on each person's first recording
day and tests on the later days of the 20 persons recorded on several; the README's
"ECG biometrics" table compares it with the within-session time split.
"""

from __future__ import annotations

import torch
from torch import nn

from ecg_lightning.models.framing import to_frames

FUSIONS = ("learned", "mean")


class LateFusionBiLSTM(nn.Module):
    """Stacked BiLSTM, a shared linear classifier at every step, weighted-average fusion.

    Input ``[batch, channels, time]`` (one sample per step); output ``[batch, num_classes]``:
    log-probabilities of the fused decision, usable as logits.
    """

    head_path = "step_classifier"  # the per-step classifier: fused inputs join every step

    def __init__(self, num_classes: int, in_channels: int, seq_len: int, hidden_size: int = 64,
                 num_layers: int = 3, dropout: float = 0.2, fusion: str = "learned",
                 frame_length: int = 1) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"model.net.fusion={fusion!r} is unknown; valid: {', '.join(FUSIONS)}")
        self.frame_length = frame_length
        self.rnn = nn.LSTM(in_channels * frame_length, hidden_size, num_layers=num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.step_classifier = nn.Linear(2 * hidden_size, num_classes)
        # One fusion score per time step; zeros = equal weights after the softmax.
        scores = torch.zeros(seq_len // frame_length)
        if fusion == "learned":
            self.fusion_scores = nn.Parameter(scores)
        else:
            self.register_buffer("fusion_scores", scores)

    def step_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction of every time step: ``[batch, time, num_classes]`` log-probabilities."""
        states, _ = self.rnn(to_frames(x, self.frame_length))
        return torch.log_softmax(self.step_classifier(self.dropout(states)), dim=-1)

    def fusion_weights(self) -> torch.Tensor:
        return torch.softmax(self.fusion_scores, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step_log_probs = self.step_log_probs(x)
        if step_log_probs.shape[1] != self.fusion_scores.shape[0]:
            raise ValueError(f"input has {step_log_probs.shape[1]} time steps, the fusion weights "
                             f"{self.fusion_scores.shape[0]}: the model was built for another window")
        log_weights = torch.log_softmax(self.fusion_scores, dim=0)[None, :, None]
        # log sum_t w_t p_t(c), computed in log space for stability
        return torch.logsumexp(step_log_probs + log_weights, dim=1)
