#!/usr/bin/env bash
# CLIPSonic on VGGSound: text-to-audio trained on the VGGSound training videos' CLIP IMAGE embeddings (no text);
# queried with text (ZS; PD with a prior) and images (IQ). Data stages are CLIPSep's (../clipsep1/local).
#
#   ./run.sh --stage 1 --ngpu 1                          # everything (stage 1 needs internet)
#   ./run.sh --stage 6 --ngpu 4                          # train the diffusion models on 4 GPUs
#   ./run.sh --stage 7 --gpu_inference true              # generate and score on the GPU
#   ./run.sh --stage 8 --fad_model ~/ckpt/vggish-10086976.pth --clap_model ~/ckpt/clap-htsat-unfused   # offline copies
#   ./run.sh --stage 5 --pretrained_prior ~/dalle2/prior   # PD offline: a local copy of the LAION prior
#
# Our choices (the paper is silent, clipsonic.md §8): OpenAI CLIP ViT-L/14 (768-d: the published DALL-E 2
# prior works on it), 16 kHz, 80 mels, hop 256, 65535-sample clips, the 78 M U-Net of
# TEMPLATE/clipsonic1/conf/train_clipsonic_paper.yaml, HiFi-GAN on the same mels. PD: the paper's
# pretrained prior, LAION's DALL-E 2 prior (Hugging Face laion/DALLE2-PyTorch, prior/best.pth +
# prior_config.json, 1.3 GB, downloaded on first use; a directory holding both also works offline).
# VGGSound has no captioned images to train a prior on.
# Metrics: FAD with VGGish (torchvggish's published weights, downloaded once into torch.hub's cache) and CLAP
# score with laion/clap-htsat-unfused (transformers; Hugging Face cache) for every variant and guidance scale
# (IQ's CLAP against its test item's label text); local copies work offline (TEMPLATE/clipsonic1/clipsonic.sh).
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. ./path.sh

. scripts/corpus_options.sh  # download options -> ${data_opts}; the rest -> ${args[@]}

./clipsonic.sh \
    --world_dir world --data_dir data --dump_dir dump --exp_dir exp \
    --local_data_args "${data_opts}" \
    --train_clip false --clip_model ViT-L-14 --clip_pretrained openai --frame_size 224 \
    --vocoder_config conf/train_vocoder_hifigan.yaml \
    --image_config conf/train_clipsonic_iq.yaml --text_config conf/train_clipsonic_sd.yaml \
    --pretrained_prior laion \
    --gen_vocoder hifigan --gen_per_class 10 --guidance_scales "1 2 3 5" --gen_steps 25 \
    --eval_classifier false --fad_model vggish --clap_model laion/clap-htsat-unfused \
    --results_title "CLIPSonic recipe on VGGSound" \
    "${args[@]}"
exit
}
