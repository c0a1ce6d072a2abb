//! CLIP, SigLIP, SIGROT and UOT values against NumPy/POT values from tools/gen_sinkhorn_fixtures.py.

use burn::backend::NdArray;
use burn::prelude::*;
use crate::common::{flat, matrix, max_rel_diff, read_json, to_f64};
use otclip::loss::{
    clip_loss, objective_loss, scaled_plan, siglip_loss, sigrot_loss, teacher_graph, uot_loss, Contrastive, GradMode, Kappa,
    LossConfig, LossInputs, SinkhornConfig, SolverPath, Transport,
};
use otclip::loss::sigrot::{teacher_target, KappaSource};

type B = NdArray<f64>;

fn close(name: &str, ours: f64, reference: f64) {
    let error = (ours - reference).abs() / reference.abs().max(1e-12);
    assert!(error <= 1e-5, "{name}: {ours} vs {reference} (relative {error:e})");
}

fn scalar(value: &serde_json::Value) -> Tensor<B, 1> {
    otclip::f64_tensor(&[value.as_f64().unwrap()], [1], &Default::default())
}

#[test]
fn every_loss_matches_the_reference() {
    let fixtures = read_json("losses/losses.json");
    let cases = fixtures["cases"].as_array().unwrap();
    assert!(cases.len() >= 3);
    let device = Default::default();
    for case in cases {
        let (input, output) = (&case["inputs"], &case["outputs"]);
        let name = case["name"].as_str().unwrap();
        let x = matrix::<B>(&input["x"], &device);
        let y = matrix::<B>(&input["y"], &device);
        let ids: Vec<u64> = input["image_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let scale = scalar(&input["logit_scale_exp"]);
        let (a, b) = (matrix::<B>(&input["teacher_A"], &device), matrix::<B>(&input["teacher_B"], &device));
        let sinkhorn = SinkhornConfig::new()
            .with_eps(input["eps"].as_f64().unwrap())
            .with_tau(input["tau"].as_f64())
            .with_iterations(input["iters"].as_u64().unwrap() as usize);
        let kappa_value = input["kappa"].as_f64().unwrap();

        close(&format!("{name} clip"), clip_loss(x.clone(), y.clone(), scale.clone(), &ids).into_scalar(), output["clip"].as_f64().unwrap());
        let siglip = siglip_loss(x.clone(), y.clone(), scalar(&input["siglip_scale"]), scalar(&input["siglip_bias"]), &ids).into_scalar();
        close(&format!("{name} siglip"), siglip, output["siglip"].as_f64().unwrap());

        let s = teacher_graph(a.clone(), b.clone());
        assert!(max_rel_diff(&to_f64(s.clone()), &flat(&output["teacher_S"])) < 1e-12, "{name} S");
        assert!(max_rel_diff(&to_f64(teacher_target(s.clone(), kappa_value)), &flat(&output["target_Q"])) < 1e-9, "{name} Q");
        let (p, _) = scaled_plan(x.clone(), y.clone(), &sinkhorn);
        let plan_error = max_rel_diff(&to_f64(p), &flat(&output["plan_P"]));
        assert!(plan_error < 1e-8, "{name} P: {plan_error:e}");

        let kappa = otclip::f64_tensor(&[kappa_value], [1], &device);
        let sigrot = sigrot_loss(x.clone(), y.clone(), s, kappa, &sinkhorn).into_scalar();
        close(&format!("{name} sigrot"), sigrot, output["sigrot"].as_f64().unwrap());
        let uot = uot_loss(x.clone(), y.clone(), scale.clone(), &sinkhorn).into_scalar();
        close(&format!("{name} uot"), uot, output["uot"].as_f64().unwrap());

        // The hybrid through the configured objective, as training runs it.
        let kappa_config = match input["kappa_source"].as_str() {
            Some("scale") => Kappa::Named(KappaSource::Scale),
            _ => Kappa::Fixed(kappa_value),
        };
        let config = LossConfig {
            contrastive: Contrastive::Clip,
            transport: Transport::Sigrot,
            lambda: 0.1,
            kappa: kappa_config,
            transport_warmup_epochs: 0,
            sinkhorn: SinkhornConfig { tolerance: 0.0, grad: GradMode::Implicit, solver: SolverPath::Fused, ..sinkhorn },
        };
        let inputs = LossInputs {
            image: x,
            text: y,
            scale,
            bias: scalar(&input["siglip_bias"]),
            image_ids: ids,
            teacher: Some((a, b)),
        };
        let total = objective_loss(inputs, &config, false).unwrap().total.into_scalar();
        close(&format!("{name} clip+sigrot"), total, output["clip_plus_sigrot"].as_f64().unwrap());
    }
}

#[test]
fn sigrot_needs_a_teacher() {
    let device = Default::default();
    let x = Tensor::<B, 2>::eye(3, &device);
    let config: LossConfig = toml::from_str(
        "contrastive = \"none\"\ntransport = \"sigrot\"\nlambda = 0.1\nkappa = 20\ntransport_warmup_epochs = 0\n[sinkhorn]\neps = 0.05\ntau = 0.5\niterations = 10\ntolerance = 0.0\ngrad = \"unroll\"",
    )
    .unwrap();
    assert_eq!(config.kappa, Kappa::Fixed(20.0));
    let inputs = LossInputs {
        image: x.clone(),
        text: x,
        scale: Tensor::from_floats([10.0], &device),
        bias: Tensor::from_floats([0.0], &device),
        image_ids: vec![0, 1, 2],
        teacher: None,
    };
    let err = objective_loss(inputs, &config, false).err().expect("an error");
    assert!(err.to_string().contains("teacher"), "{err}");
}
