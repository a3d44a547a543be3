// oneDNN's convolution and batch-norm passes as XLA FFI handlers: NHWC, HWIO kernels, float32.
//
// XLA's CPU backend runs the convolutions of these networks at 30-140 GFLOP/s (its weight
// gradient at 2-14); oneDNN, the library PyTorch's CPU convolutions use, runs the same
// passes 2-10x faster on this machine. XLA offers no switch that routes convolutions to it
// (its --xla_cpu_use_onednn flag leaves them as they are), so this file binds the three
// passes through XLA's FFI: no library offers the binding. jaxcnn/cpu/onednn.py builds it
// and registers the handlers; jaxcnn/cpu/conv.py and jaxcnn/cpu/batch_norm.py call them.
//
// Batch norm (training: the batch's statistics) is two passes each way in oneDNN, against
// XLA's five to seven separate reductions and elementwise loops for flax's formulation.
//
// Activations stay in XLA's row-major NHWC buffers (oneDNN's nhwc); the kernel is reordered
// from HWIO into the blocked layout oneDNN picks for each pass, every call, as PyTorch does
// when training. Primitives are created once per shape and kept.
//
// Every primitive runs on a scratchpad this file owns (scratchpad_mode::user). oneDNN's own
// (library mode) scratchpad of its im2col + GEMM convolutions is a thread-local buffer sized
// for the primitives created on that thread, and XLA calls a handler from whichever of its
// threads runs the step: a primitive created on one thread and executed on another wrote its
// im2col columns into the other thread's buffer, smaller or none (segmentation faults on
// AlexNet's 11x11 stem wherever oneDNN has no direct kernel for it).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

// batch, height, width, in channels, kernel height, kernel width, out channels, two strides,
// padding top, bottom, left, right.
using Shape = std::vector<int64_t>;

struct Passes {
  memory::desc src, weights, dst;  // XLA's layouts: nhwc, hwio, nhwc
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data::primitive_desc input_gradient_pd;
  dnnl::convolution_backward_data input_gradient;
  dnnl::convolution_backward_weights::primitive_desc kernel_gradient_pd;
  dnnl::convolution_backward_weights kernel_gradient;
};

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// One convolution at a time: each already uses every core (OpenMP), and two at once from
// XLA's worker threads would put twice as many threads on the cores.
std::mutex& Lock() {
  static std::mutex* mutex = new std::mutex;
  return *mutex;
}

// The primitive attributes of every primitive here: a scratchpad passed at execution.
const dnnl::primitive_attr& Attributes() {
  static dnnl::primitive_attr* attr = [] {
    auto* a = new dnnl::primitive_attr;
    a->set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }();
  return *attr;
}

// Runs a primitive with its arguments and the scratchpad its descriptor asks for: one buffer,
// grown to the largest request so far and shared by all primitives, since Lock() makes the
// calls serial. Called with Lock() held.
void Execute(const dnnl::primitive& primitive, const memory::desc& scratchpad,
             dnnl::stream& stream, std::unordered_map<int, memory> args) {
  static auto* buffer = new memory;  // empty until a primitive asks for a scratchpad
  const size_t bytes = scratchpad.get_size();
  if (bytes > 0) {
    if (!*buffer || buffer->get_desc().get_size() < bytes) {
      *buffer = memory(memory::desc({static_cast<memory::dim>(bytes)}, memory::data_type::u8,
                                    memory::format_tag::a),
                       Engine());
    }
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(scratchpad, Engine(), buffer->get_data_handle()));
  }
  primitive.execute(stream, args);
}

// Called with Lock() held.
Passes& PassesFor(const Shape& s) {
  static auto* cache = new std::map<Shape, std::unique_ptr<Passes>>;
  auto found = cache->find(s);
  if (found != cache->end()) return *found->second;
  const int64_t n = s[0], h = s[1], w = s[2], c = s[3], kh = s[4], kw = s[5], o = s[6];
  const int64_t sh = s[7], sw = s[8], top = s[9], bottom = s[10], left = s[11], right = s[12];
  const int64_t oh = (h + top + bottom - kh) / sh + 1, ow = (w + left + right - kw) / sw + 1;
  const auto f32 = memory::data_type::f32;
  auto p = std::make_unique<Passes>();
  p->src = memory::desc({n, c, h, w}, f32, memory::format_tag::nhwc);
  p->dst = memory::desc({n, o, oh, ow}, f32, memory::format_tag::nhwc);
  p->weights = memory::desc({o, c, kh, kw}, f32, memory::format_tag::hwio);
  const memory::desc any_weights({o, c, kh, kw}, f32, memory::format_tag::any);
  const memory::dims strides{sh, sw}, pad_l{top, left}, pad_r{bottom, right};
  const auto direct = dnnl::algorithm::convolution_direct;
  p->forward_pd = dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, direct, p->src, any_weights, p->dst,
      strides, pad_l, pad_r, Attributes());
  p->forward = dnnl::convolution_forward(p->forward_pd);
  p->input_gradient_pd = dnnl::convolution_backward_data::primitive_desc(
      Engine(), direct, p->src, any_weights, p->dst, strides, pad_l, pad_r, p->forward_pd,
      Attributes());
  p->input_gradient = dnnl::convolution_backward_data(p->input_gradient_pd);
  p->kernel_gradient_pd = dnnl::convolution_backward_weights::primitive_desc(
      Engine(), direct, p->src, any_weights, p->dst, strides, pad_l, pad_r, p->forward_pd,
      Attributes());
  p->kernel_gradient = dnnl::convolution_backward_weights(p->kernel_gradient_pd);
  Passes& passes = *p;
  cache->emplace(s, std::move(p));
  return passes;
}

ffi::Error Check(ffi::Span<const int64_t> input, ffi::Span<const int64_t> kernel,
                 ffi::Span<const int64_t> strides, ffi::Span<const int64_t> padding,
                 Shape* shape) {
  if (input.size() != 4 || kernel.size() != 4 || strides.size() != 2 || padding.size() != 4 ||
      input[3] != kernel[2]) {
    return ffi::Error::InvalidArgument(
        "jaxcnn oneDNN convolution: expected an NHWC input, an HWIO kernel with the input's "
        "channels, two strides and four paddings");
  }
  *shape = {input[0], input[1], input[2], input[3], kernel[0], kernel[1], kernel[3],
            strides[0], strides[1], padding[0], padding[1], padding[2], padding[3]};
  return ffi::Error::Success();
}

// Copies `from` into `to`, another layout of the same tensor.
void Reorder(const memory& from, const memory& to, dnnl::stream& stream) {
  const dnnl::reorder::primitive_desc pd(from, to, Attributes());
  Execute(dnnl::reorder(pd), pd.scratchpad_desc(), stream,
          {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

// The kernel in the layout a pass wants: XLA's HWIO buffer itself, or a reordered copy.
memory KernelFor(const memory::desc& wanted, const memory::desc& hwio, float* data,
                 dnnl::stream& stream) {
  memory given(hwio, Engine(), data);
  if (wanted == hwio) return given;
  memory reordered(wanted, Engine());
  Reorder(given, reordered, stream);
  return reordered;
}

// Runs body(stream) holding Lock(), oneDNN's exceptions turned into XLA errors.
template <typename Body>
ffi::Error Locked(const char* what, Body body) {
  try {
    std::lock_guard<std::mutex> hold(Lock());
    dnnl::stream stream(Engine());
    body(stream);
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("jaxcnn oneDNN ") + what + ": " + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::ResultBuffer<ffi::F32> y, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(x.dimensions(), kernel.dimensions(), strides, padding, &shape); e.failure())
    return e;
  return Locked("convolution", [&](dnnl::stream& stream) {
    Passes& p = PassesFor(shape);
    memory k = KernelFor(p.forward_pd.weights_desc(), p.weights, kernel.typed_data(), stream);
    Execute(p.forward, p.forward_pd.scratchpad_desc(), stream,
            {{DNNL_ARG_SRC, memory(p.src, Engine(), x.typed_data())},
             {DNNL_ARG_WEIGHTS, k},
             {DNNL_ARG_DST, memory(p.dst, Engine(), y->typed_data())}});
  });
}

ffi::Error InputGradient(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> kernel,
                         ffi::ResultBuffer<ffi::F32> dx, ffi::Span<const int64_t> strides,
                         ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(dx->dimensions(), kernel.dimensions(), strides, padding, &shape);
      e.failure())
    return e;
  return Locked("convolution", [&](dnnl::stream& stream) {
    Passes& p = PassesFor(shape);
    memory k = KernelFor(p.input_gradient_pd.weights_desc(), p.weights, kernel.typed_data(),
                         stream);
    Execute(p.input_gradient, p.input_gradient_pd.scratchpad_desc(), stream,
            {{DNNL_ARG_DIFF_DST, memory(p.dst, Engine(), g.typed_data())},
             {DNNL_ARG_WEIGHTS, k},
             {DNNL_ARG_DIFF_SRC, memory(p.src, Engine(), dx->typed_data())}});
  });
}

ffi::Error KernelGradient(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                          ffi::ResultBuffer<ffi::F32> dkernel, ffi::Span<const int64_t> strides,
                          ffi::Span<const int64_t> padding) {
  Shape shape;
  if (auto e = Check(x.dimensions(), dkernel->dimensions(), strides, padding, &shape);
      e.failure())
    return e;
  return Locked("convolution", [&](dnnl::stream& stream) {
    Passes& p = PassesFor(shape);
    memory hwio(p.weights, Engine(), dkernel->typed_data());
    const memory::desc& produced = p.kernel_gradient_pd.diff_weights_desc();
    memory out = produced == p.weights ? hwio : memory(produced, Engine());
    Execute(p.kernel_gradient, p.kernel_gradient_pd.scratchpad_desc(), stream,
            {{DNNL_ARG_SRC, memory(p.src, Engine(), x.typed_data())},
             {DNNL_ARG_DIFF_DST, memory(p.dst, Engine(), g.typed_data())},
             {DNNL_ARG_DIFF_WEIGHTS, out}});
    if (produced != p.weights) Reorder(out, hwio, stream);
  });
}


// Batch norm over an NHWC batch: batch, height, width, channels, and epsilon's bits.
struct Normalisation {
  memory::desc data, channels;
  dnnl::batch_normalization_forward::primitive_desc forward_pd;
  dnnl::batch_normalization_forward forward;
  dnnl::batch_normalization_backward::primitive_desc backward_pd;
  dnnl::batch_normalization_backward backward;
};

// Called with Lock() held.
Normalisation& NormalisationFor(ffi::Span<const int64_t> dims, float epsilon) {
  static auto* cache = new std::map<std::pair<Shape, float>, std::unique_ptr<Normalisation>>;
  const Shape shape(dims.begin(), dims.end());
  auto found = cache->find({shape, epsilon});
  if (found != cache->end()) return *found->second;
  const auto f32 = memory::data_type::f32;
  auto p = std::make_unique<Normalisation>();
  p->data = memory::desc({dims[0], dims[3], dims[1], dims[2]}, f32, memory::format_tag::nhwc);
  p->channels = memory::desc({dims[3]}, f32, memory::format_tag::a);
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  p->forward_pd = dnnl::batch_normalization_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, p->data, p->data, epsilon, flags,
      Attributes());
  p->forward = dnnl::batch_normalization_forward(p->forward_pd);
  p->backward_pd = dnnl::batch_normalization_backward::primitive_desc(
      Engine(), dnnl::prop_kind::backward, p->data, p->data, p->data, epsilon, flags,
      p->forward_pd, Attributes());
  p->backward = dnnl::batch_normalization_backward(p->backward_pd);
  Normalisation& normalisation = *p;
  cache->emplace(std::make_pair(shape, epsilon), std::move(p));
  return normalisation;
}

ffi::Error CheckNormalisation(ffi::Span<const int64_t> x, ffi::Span<const int64_t> scale) {
  if (x.size() != 4 || scale.size() != 1 || scale[0] != x[3]) {
    return ffi::Error::InvalidArgument(
        "jaxcnn oneDNN batch norm: expected an NHWC input and one scale per channel");
  }
  return ffi::Error::Success();
}

// y = (x - mean) / sqrt(var + epsilon) * scale + shift, with the batch's mean and (biased)
// variance over batch, height and width, which it also returns.
ffi::Error BatchNormForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                            ffi::Buffer<ffi::F32> shift, ffi::ResultBuffer<ffi::F32> y,
                            ffi::ResultBuffer<ffi::F32> mean, ffi::ResultBuffer<ffi::F32> var,
                            float epsilon) {
  if (auto e = CheckNormalisation(x.dimensions(), scale.dimensions()); e.failure()) return e;
  return Locked("batch norm", [&](dnnl::stream& stream) {
    Normalisation& p = NormalisationFor(x.dimensions(), epsilon);
    auto on = [&](const memory::desc& d, float* data) { return memory(d, Engine(), data); };
    Execute(p.forward, p.forward_pd.scratchpad_desc(), stream,
            {{DNNL_ARG_SRC, on(p.data, x.typed_data())},
             {DNNL_ARG_SCALE, on(p.channels, scale.typed_data())},
             {DNNL_ARG_SHIFT, on(p.channels, shift.typed_data())},
             {DNNL_ARG_DST, on(p.data, y->typed_data())},
             {DNNL_ARG_MEAN, on(p.channels, mean->typed_data())},
             {DNNL_ARG_VARIANCE, on(p.channels, var->typed_data())}});
  });
}

// The gradients of the loss with respect to x, scale and shift, given its gradient dy with
// respect to y and the forward pass's statistics.
ffi::Error BatchNormBackward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                             ffi::Buffer<ffi::F32> mean, ffi::Buffer<ffi::F32> var,
                             ffi::Buffer<ffi::F32> scale, ffi::ResultBuffer<ffi::F32> dx,
                             ffi::ResultBuffer<ffi::F32> dscale,
                             ffi::ResultBuffer<ffi::F32> dshift, float epsilon) {
  if (auto e = CheckNormalisation(x.dimensions(), scale.dimensions()); e.failure()) return e;
  return Locked("batch norm", [&](dnnl::stream& stream) {
    Normalisation& p = NormalisationFor(x.dimensions(), epsilon);
    auto on = [&](const memory::desc& d, float* data) { return memory(d, Engine(), data); };
    Execute(p.backward, p.backward_pd.scratchpad_desc(), stream,
            {{DNNL_ARG_SRC, on(p.data, x.typed_data())},
             {DNNL_ARG_DIFF_DST, on(p.data, dy.typed_data())},
             {DNNL_ARG_MEAN, on(p.channels, mean.typed_data())},
             {DNNL_ARG_VARIANCE, on(p.channels, var.typed_data())},
             {DNNL_ARG_SCALE, on(p.channels, scale.typed_data())},
             {DNNL_ARG_DIFF_SRC, on(p.data, dx->typed_data())},
             {DNNL_ARG_DIFF_SCALE, on(p.channels, dscale->typed_data())},
             {DNNL_ARG_DIFF_SHIFT, on(p.channels, dshift->typed_data())}});
  });
}

}  // namespace

#define JAXCNN_CONV_BINDING()                                                     \
  ffi::Ffi::Bind()                                                                \
      .Arg<ffi::Buffer<ffi::F32>>()                                               \
      .Arg<ffi::Buffer<ffi::F32>>()                                               \
      .Ret<ffi::Buffer<ffi::F32>>()                                               \
      .Attr<ffi::Span<const int64_t>>("strides")                                  \
      .Attr<ffi::Span<const int64_t>>("padding")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvForward, Forward, JAXCNN_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvInputGradient, InputGradient,
                              JAXCNN_CONV_BINDING());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvKernelGradient, KernelGradient,
                              JAXCNN_CONV_BINDING());

using F32 = ffi::Buffer<ffi::F32>;
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnBatchNormForward, BatchNormForward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<float>("epsilon"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnBatchNormBackward, BatchNormBackward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<float>("epsilon"));
