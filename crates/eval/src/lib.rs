//! Medical VQA evaluation: dataset readers (VQA-RAD, SLAKE, PathVQA, OmniMedVQA, JSONL),
//! answer normalisation protocols, accuracy per modality / body system / question type, reports.
