from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    with open(path) as f:
        return [
            line.split('#')[0].strip() for line in f
            if line.split('#')[0].strip()
        ]


def read_version() -> str:
    scope: dict = {}
    with open('mmdiff/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmdiff',
    version=read_version(),
    description=('Instance-difficulty re-balancing (Yu et al., CVPR 2022) '
                 'for MMDetection 3.x and long-tailed classification'),
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(
        exclude=('tests', 'tests.*', 'configs', 'tools', 'benchmarks',
                 'projects', 'projects.*')),
    python_requires='>=3.8',
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={
        'mim': read_requirements('requirements/mminstall.txt'),
        'tests': read_requirements('requirements/tests.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
