#!/usr/bin/env bash
# CLIPSep on MUSIC: train on the MUSIC solo videos (11 instruments) with CLIP
# image queries (no labels), test on MUSIC+ with text queries. See README.md.
# This is NOT the paper's MUSIC+ column: the paper scores MUSIC+ with its VGGSound-trained models
# (egs2/vggsound/clipsep1 does that); here the models are trained on MUSIC itself.
#
#   ./run.sh --stage 1 --ngpu 1                        # everything (needs internet for stage 1)
#   ./run.sh --stage 1 --stop_stage 1 --cookies cookies.txt --download_nj 2   # downloads only
#   ./run.sh --stage 7 --ngpu 4 --models "clipsep_nit"  # train one model on 4 GPUs
#   ./run.sh --stage 8 --gpu_inference true            # separate (and embed queries) on the GPU
#   ./run.sh --skip_upload_hf false --hf_repo user/clipsep_music --stage 12  # share on the Hub
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. ./path.sh

models="clipsep clipsep_nit clipsep_text bertsep pit"   # conf/train_<model>.yaml each (no LabelSep on MUSIC+)
own_options="models"
. scripts/corpus_options.sh  # download options -> ${data_opts}; the rest -> ${args[@]}

configs=""
for m in ${models}; do configs+=" conf/train_${m}.yaml"; done

./clipsep.sh \
    --world_dir world --data_dir data --dump_dir dump --exp_dir exp \
    --local_data_args "${data_opts}" \
    --train_clip false --clip_model ViT-B-32 --clip_pretrained openai --frame_size 224 \
    --train_configs "${configs# }" \
    --text_prompt ensemble --score_backend museval --corpus_name MUSIC \
    --test_sets "test_mix:MUSIC+" \
    --results_title "CLIPSep trained on MUSIC, tested on MUSIC+ (not the paper's MUSIC+ column: its models are trained on VGGSound)" \
    --paper_results ../../vggsound/clipsep1/conf/paper_results.yaml \
    "${args[@]}"
exit
}
