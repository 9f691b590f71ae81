"""Maps written back in the space of the key: volume, GIfTI surface, CIFTI grayordinates."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nibabel import cifti2

from nishard.learn.spaces import ArraySpace, CiftiSpace, SurfaceSpace, resolve_space


def test_surface_keys_give_gifti_maps(tmp_path):
    space = resolve_space((), (), "surface_L", 10242)
    assert isinstance(space, SurfaceSpace) and space.hemisphere == "left"
    maps = np.random.default_rng(0).standard_normal((3, 10242)).astype(np.float32)
    path = space.save(maps, tmp_path / "components")
    assert path.name == "components.func.gii"
    back = np.stack([d.data for d in nib.load(path).darrays])
    np.testing.assert_array_equal(back, maps)
    assert resolve_space((), (), "surface_R", 5).hemisphere == "right"


def test_cifti_keys_take_the_brain_models_of_a_dense_series(tmp_path):
    models = cifti2.BrainModelAxis.from_surface(np.arange(20), 20, "CortexLeft")
    series = cifti2.SeriesAxis(0, 2.0, 4)
    header = cifti2.Cifti2Header.from_axes((series, models))
    source = tmp_path / "run.dtseries.nii"
    nib.save(nib.Cifti2Image(np.zeros((4, 20), np.float32), header), source)
    space = resolve_space((), (), "cifti", 20, mask=source)
    assert isinstance(space, CiftiSpace)
    maps = np.arange(40, dtype=np.float32).reshape(2, 20)
    path = space.save(maps, tmp_path / "components")
    image = nib.load(path)
    assert path.name == "components.dscalar.nii"
    np.testing.assert_array_equal(np.asarray(image.dataobj), maps)
    assert isinstance(image.header.get_axis(0), cifti2.ScalarAxis)
    # Without a dense series to take the brain models from, maps stay arrays.
    assert isinstance(resolve_space((), (), "cifti", 20), ArraySpace)
