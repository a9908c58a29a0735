"""Causal uplift engine: incremental effects, experiments and "why did my KPI change?".

Modules (imported directly; this package stays light so `adguide --help` is fast):
- cate: fit_cate(X, treatment, outcome, ...) -> CateFit (.summary, .predict, .oof_cate, .pseudo_outcome)
- effects: average_effects, segment_effects, effects_by_predicted_group
- metrics: uplift_curves (Qini/uplift, AUUC, Qini coefficient), uplift_at_k, pehe
- ab: analyze_ab (CUPED, lift, SRM, MDE), srm_check, minimum_detectable_effect, required_sample_size
- incrementality: ad_incrementality (incremental vs attributed ROAS)
- attribution: funnel_attribution (LMDI/Shapley over funnel drivers), factor_attribution, shapley_values
- plots: plot_uplift_curves, plot_waterfall (PNG)
- synthetic: nie_wager designs A-D
"""
