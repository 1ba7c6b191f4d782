#!/usr/bin/env bash
# CLIPSep on VGGSound (the paper's experiment): train on the VGGSound training videos with CLIP
# image queries (no labels), test with text queries on VGGSound-Clean+ and on MUSIC+, as the paper's
# Table 1 (whose models are all trained on VGGSound). See README.md.
#
#   ./run.sh --stage 1 --ngpu 1                        # everything (needs internet for stage 1)
#   ./run.sh --stage 1 --stop_stage 1 --cookies cookies.txt --download_nj 2   # downloads only
#   ./run.sh --stage 7 --ngpu 4 --models "clipsep_nit"  # train one model on 4 GPUs
#   ./run.sh --stage 8 --gpu_inference true            # separate (and embed queries) on the GPU
#   ./run.sh --skip_upload_hf false --hf_repo user/clipsep_vggsound --stage 12  # share on the Hub
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. ./path.sh

models="clipsep clipsep_nit bertsep clipsep_text pit labelsep"   # conf/train_<model>.yaml each (Table 1 order)
own_options="models"
. scripts/corpus_options.sh  # download options -> ${data_opts}; the rest -> ${args[@]}

configs=""
for m in ${models}; do configs+=" conf/train_${m}.yaml"; done

./clipsep.sh \
    --world_dir world --data_dir data --dump_dir dump --exp_dir exp \
    --local_data_args "${data_opts}" \
    --train_clip false --clip_model ViT-B-32 --clip_pretrained openai --frame_size 224 \
    --train_configs "${configs# }" \
    --test_sets "test_mix:VGGSound-Clean+ test_music_plus:MUSIC+" \
    --text_prompt ensemble --score_backend museval --corpus_name VGGSound \
    --results_title "CLIPSep trained on VGGSound (the paper's Table 1)" \
    --paper_results conf/paper_results.yaml \
    "${args[@]}"
exit
}
