#!/usr/bin/env bash
## cryoweave job script for SLURM: a Jinja2 template (cryoweave lane render P1 J7 shows it filled in).
## Built-in variables: run_cmd (the command that runs the job: run it once), num_cpu, num_gpu,
## ram_gb (what the job type asks for), job_dir_abs, project_dir_abs, job_log_path_abs,
## project_uid, job_uid, job_type, job_title, script_path_abs, lane_name.
## Any other variable is a custom variable: set it per job (cryoweave job queue ... --var name=value)
## or for the lane ("custom_vars" in cluster_info.json). A directive whose value is empty is left out.
#SBATCH --job-name=cryoweave_{{ project_uid }}_{{ job_uid }}
#SBATCH --cpus-per-task={{ num_cpu }}
#SBATCH --mem={{ (ram_gb * 1024) | int }}M
#SBATCH --output={{ job_log_path_abs }}
#SBATCH --error={{ job_log_path_abs }}
#SBATCH --open-mode=append
#SBATCH --partition={{ partition }}
#SBATCH --time={{ time_requested }}
{%- if num_gpu %}
#SBATCH --gres=gpu:{{ num_gpu }}
{%- endif %}

{% if num_gpu %}echo "GPUs: ${CUDA_VISIBLE_DEVICES}"{% endif %}
{{ run_cmd }}
