//! The Sinkhorn ops under burn's `fusion` feature: each op goes into the fusion stream as a custom
//! operation that runs the wrapped backend's kernels when the stream executes. Fusion cannot
//! merge them with neighbouring element-wise ops, but it orders them with the rest of the stream.

use std::marker::PhantomData;

use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionBackend, FusionRuntime, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use crate::{BackwardInputs, Potentials, SinkhornBackend, SinkhornConfig, SolveRecord};

type Handles<B> = HandleContainer<<<B as FusionBackend>::FusionRuntime as FusionRuntime>::FusionHandle>;

#[derive(Debug, Clone, Copy)]
enum Op {
    Solve(SinkhornConfig),
    Plan(f64),
    Backward(SinkhornConfig, usize),
}

#[derive(Debug, Clone)]
struct SinkhornOp<B> {
    desc: CustomOpIr,
    op: Op,
    _backend: PhantomData<fn() -> B>,
}

impl<B: FusionBackend + SinkhornBackend> Operation<B::FusionRuntime> for SinkhornOp<B> {
    fn execute(&self, handles: &mut Handles<B>) {
        let input = |handles: &mut Handles<B>, index: usize| handles.get_float_tensor::<B>(&self.desc.inputs[index]);
        let outputs: Vec<FloatTensor<B>> = match self.op {
            Op::Solve(config) => {
                let (cost, log_a, log_b) = (input(handles, 0), input(handles, 1), input(handles, 2));
                let solved = B::sinkhorn_solve(cost, log_a, log_b, &config);
                vec![solved.alpha, solved.beta, solved.alpha_history, solved.beta_history, solved.iterations]
            }
            Op::Plan(eps) => {
                let (cost, alpha, beta) = (input(handles, 0), input(handles, 1), input(handles, 2));
                vec![B::sinkhorn_plan(cost, alpha, beta, eps)]
            }
            Op::Backward(config, iterations) => {
                let inputs: Vec<_> = (0..7).map(|index| input(handles, index)).collect();
                let [cost, log_a, log_b, alpha_history, beta_history, alpha_adjoint, beta_adjoint]: [FloatTensor<B>; 7] = inputs.try_into().expect("seven inputs");
                let record = SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations };
                vec![B::sinkhorn_backward(BackwardInputs { record, alpha_adjoint, beta_adjoint }, &config)]
            }
        };
        for (output, tensor) in self.desc.outputs.iter().zip(outputs) {
            handles.register_float_tensor::<B>(&output.id, tensor);
        }
    }
}

fn register<B: FusionBackend + SinkhornBackend>(
    name: &'static str,
    inputs: Vec<FusionTensor<B::FusionRuntime>>,
    output_shapes: Vec<Shape>,
    op: Op,
) -> Vec<FusionTensor<B::FusionRuntime>> {
    let client = inputs[0].client.clone();
    let dtype: DType = inputs[0].dtype;
    let streams = OperationStreams::with_inputs(inputs.iter());
    let outputs: Vec<TensorIr> = output_shapes.into_iter().map(|shape| TensorIr::uninit(client.create_empty_handle(), shape, dtype)).collect();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|tensor| tensor.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    client.register(streams, OperationIr::Custom(desc.clone()), SinkhornOp::<B> { desc, op, _backend: PhantomData })
}

impl<B: FusionBackend + SinkhornBackend> SinkhornBackend for Fusion<B> {
    fn sinkhorn_solve(cost: FloatTensor<Self>, log_a: FloatTensor<Self>, log_b: FloatTensor<Self>, config: &SinkhornConfig) -> Potentials<Self> {
        let [batch, n, m] = cost.shape.dims::<3>();
        let slots = config.iterations + 1;
        let shapes = vec![
            Shape::new([batch, n]),
            Shape::new([batch, m]),
            Shape::new([slots, batch, n]),
            Shape::new([slots, batch, m]),
            Shape::new([1]),
        ];
        let [alpha, beta, alpha_history, beta_history, iterations]: [FusionTensor<B::FusionRuntime>; 5] =
            register::<B>("otclip_sinkhorn_solve", vec![cost, log_a, log_b], shapes, Op::Solve(*config)).try_into().expect("five outputs");
        Potentials { alpha, beta, alpha_history, beta_history, iterations }
    }

    fn sinkhorn_plan(cost: FloatTensor<Self>, alpha: FloatTensor<Self>, beta: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let shape = cost.shape.clone();
        register::<B>("otclip_sinkhorn_plan", vec![cost, alpha, beta], vec![shape], Op::Plan(eps)).remove(0)
    }

    fn sinkhorn_backward(inputs: BackwardInputs<Self>, config: &SinkhornConfig) -> FloatTensor<Self> {
        let BackwardInputs { record: SolveRecord { cost, log_a, log_b, alpha_history, beta_history, iterations }, alpha_adjoint, beta_adjoint } = inputs;
        let shape = cost.shape.clone();
        let inputs = vec![cost, log_a, log_b, alpha_history, beta_history, alpha_adjoint, beta_adjoint];
        register::<B>("otclip_sinkhorn_backward", inputs, vec![shape], Op::Backward(*config, iterations)).remove(0)
    }
}
